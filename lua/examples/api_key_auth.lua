-- API-key auth: answer 401 unless the request carries the configured header with the
-- configured key; remember who it was in ctx and say so on the response and in the access log.
-- Phases: on_request, on_response. Config: header (name), key (expected value).
--
--   cargo run --release -- -c lua/examples/api_key_auth.toml
--   curl -i http://127.0.0.1:6190/                          # 401
--   curl -i -H 'x-api-key: s3cret' http://127.0.0.1:6190/   # 200, x-user: demo
local M = {}

function M.on_request(req, ctx, conf)
  if req:header(conf.header) ~= conf.key then
    return req:respond(401, { error = "unauthorized" })
  end
  ctx.user = "demo"
  tidegate.log.set_field("user", ctx.user)
end

function M.on_response(req, resp, ctx, conf)
  if ctx.user then
    resp:set_header("x-user", ctx.user)
  end
end

return M
