--[[
  tidegate helper library: small functions most scripts end up writing.

  [lua]
  dir = "lua"                         -- then, in any script:
  local h = require("lib.helpers")

  h.split("a,b,,c", ",")             --> { "a", "b", "", "c" }
  h.trim("  x  ")                    --> "x"
  h.starts_with("/api/v1", "/api")   --> true
  h.ends_with("logo.png", ".png")    --> true
  h.cookie(req, "session")           --> the cookie's value, or nil
  h.bearer(req)                      --> the token of "Authorization: Bearer TOKEN", or nil
  h.basic_auth(req)                  --> user, password of "Authorization: Basic ...", or nil
  h.ipv4_in(req.client_ip, { "10.0.0.0/8", "127.0.0.1/32" })  --> true / false
  h.deny(req, 403, "why")            --> answers with a JSON error body and stops the chain
]]

local M = {}

function M.split(s, sep)
  local out = {}
  if s == nil or s == "" then
    return out
  end
  local from = 1
  while true do
    local i, j = string.find(s, sep, from, true)
    if not i then
      table.insert(out, string.sub(s, from))
      return out
    end
    table.insert(out, string.sub(s, from, i - 1))
    from = j + 1
  end
end

function M.trim(s)
  return (string.gsub(s, "^%s*(.-)%s*$", "%1"))
end

function M.starts_with(s, prefix)
  return string.sub(s, 1, #prefix) == prefix
end

function M.ends_with(s, suffix)
  return suffix == "" or string.sub(s, -#suffix) == suffix
end

function M.cookie(req, name)
  local header = req:header("cookie")
  if not header then
    return nil
  end
  for _, part in ipairs(M.split(header, ";")) do
    local k, v = string.match(part, "^%s*([^=]+)=(.*)$")
    if k == name then
      return M.trim(v)
    end
  end
  return nil
end

function M.bearer(req)
  local h = req:header("authorization")
  return h and string.match(h, "^[Bb]earer%s+(%S+)$") or nil
end

function M.basic_auth(req)
  local h = req:header("authorization")
  local b64 = h and string.match(h, "^[Bb]asic%s+(%S+)$")
  local decoded = b64 and tidegate.base64.decode(b64)
  if not decoded then
    return nil
  end
  local user, pass = string.match(decoded, "^([^:]*):(.*)$")
  return user, pass
end

local function ipv4(s)
  local a, b, c, d = string.match(s or "", "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return nil
  end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then
    return nil
  end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

function M.ipv4_in(ip, cidrs)
  local n = ipv4(ip)
  if not n then
    return false
  end
  for _, cidr in ipairs(cidrs) do
    local base, bits = string.match(cidr, "^([%d%.]+)/(%d+)$")
    local b = ipv4(base or cidr)
    bits = tonumber(bits or 32)
    if b and bits <= 32 then
      local size = 2 ^ (32 - bits)
      if math.floor(n / size) == math.floor(b / size) then
        return true
      end
    end
  end
  return false
end

function M.deny(req, status, reason)
  return req:respond(status, { error = reason, request_id = req.id })
end

return M
