-- A stand-in auth service for outbound_auth.toml: 200 with `x-user` for a known token,
-- 403 otherwise. Phase: on_request. Config: tokens (token -> user).
local M = {}

function M.on_request(req, ctx, conf)
  local token = string.match(req:header("authorization") or "", "^Bearer (%S+)$")
  local user = token and conf.tokens[token]
  if not user then
    return req:respond(403, "unknown token\n")
  end
  return req:respond(200, "ok\n", { ["x-user"] = user })
end

return M
