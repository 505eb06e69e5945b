-- Response headers: add security headers to every response, say which location served it,
-- and drop headers that reveal the upstream's software.
-- Phase: on_response. Config: hsts (max-age in seconds), remove (list of header names).
--
--   cargo run --release -- -c lua/examples/response_header.toml
--   curl -i http://127.0.0.1:6190/
local M = {}

function M.on_response(req, resp, ctx, conf)
  resp:set_header("strict-transport-security", "max-age=" .. conf.hsts)
  resp:set_header("x-content-type-options", "nosniff")
  resp:set_header("x-served-by", req.location or "-")
  for _, name in ipairs(conf.remove) do
    resp:remove_header(name)
  end
end

return M
