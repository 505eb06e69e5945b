-- An outbound auth call: ask an auth service about the request's bearer token before
-- proxying. The call yields (the worker serves other requests meanwhile). A 200 lets the
-- request through with the user the service named in `x-user`; anything else is 401; an
-- unreachable service is 503. Phases: on_request, on_response.
-- Config: url (the auth service), timeout (seconds).
--
--   cargo run --release -- -c lua/examples/outbound_auth.toml
--   curl -i -H 'authorization: Bearer letmein' http://127.0.0.1:6190/   # 200, x-user: ada
--   curl -i http://127.0.0.1:6190/                                        # 401
local h = require("lib.helpers")
local M = {}

function M.on_request(req, ctx, conf)
  local token = h.bearer(req)
  if not token then
    return req:respond(401, { error = "a bearer token is required" })
  end
  local res, err = tidegate.http.request{
    method = "GET",
    url = conf.url,
    headers = { authorization = "Bearer " .. token, ["x-request-id"] = req.id },
    timeout = conf.timeout,
  }
  if not res then
    tidegate.log.error("auth service: " .. err)
    return req:respond(503, { error = "auth service unavailable" })
  end
  if res.status ~= 200 then
    return req:respond(401, { error = "invalid token" })
  end
  ctx.user = res.headers["x-user"]
  req:set_header("x-user", ctx.user or "")
end

function M.on_response(req, resp, ctx, conf)
  if ctx.user then
    resp:set_header("x-user", ctx.user)
  end
end

return M
