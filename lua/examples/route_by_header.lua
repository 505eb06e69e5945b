-- Routing by header: requests with `x-beta: 1` (or the cookie beta=1) go to the `beta`
-- upstream; everything else stays on the location's upstream. `up.selected` says which
-- upstream the location chose, and the response tells the client where it went.
-- Phases: on_upstream, on_response. Config: header (name), upstream (the beta upstream).
--
--   cargo run --release -- -c lua/examples/route_by_header.toml
--   curl -i http://127.0.0.1:6190/                  # "stable"
--   curl -i -H 'x-beta: 1' http://127.0.0.1:6190/   # "beta"
local M = {}

function M.on_upstream(req, up, ctx, conf)
  ctx.default = up.selected
  local cookie = req:header("cookie") or ""
  if req:header(conf.header) == "1" or string.find(cookie, "beta=1", 1, true) then
    up:set_upstream(conf.upstream)
    ctx.routed = conf.upstream
  end
end

function M.on_response(req, resp, ctx, conf)
  resp:set_header("x-routed-to", ctx.routed or ctx.default or "none")
end

return M
