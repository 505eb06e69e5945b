-- A JSON mock endpoint: answer GET /users/ID from a table in the config, 404 for unknown
-- users, 405 for other methods; nothing reaches an upstream. A table body is sent as JSON.
-- Phase: on_request. Config: users (a table of id -> user).
--
--   cargo run --release -- -c lua/examples/json_mock.toml
--   curl -i http://127.0.0.1:6190/users/1
local M = {}

function M.on_request(req, ctx, conf)
  local id = string.match(req.path, "^/users/(%w+)$")
  if not id then
    return req:respond(404, { error = "no such endpoint", path = req.path })
  end
  if req.method ~= "GET" then
    return req:respond(405, { error = "only GET" }, { allow = "GET" })
  end
  local user = conf.users[id]
  if not user then
    return req:respond(404, { error = "no such user", id = id })
  end
  return req:respond(200, { id = id, name = user.name, role = user.role, served_at = tidegate.now() })
end

return M
