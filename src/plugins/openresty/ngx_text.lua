-- Part of the `ngx` table (see ngx.lua): time, encodings, digests, URI escaping and arguments. Included into each openresty plugin's
-- module as the body of a function called with the table.
local ngx = ...
-- time
function ngx.time()
  return math.floor(tidegate.now())
end
function ngx.now()
  return math.floor(tidegate.now() * 1000) / 1000
end
function ngx.today()
  return os.date("!%Y-%m-%d", ngx.time())
end
function ngx.localtime()
  return os.date("!%Y-%m-%d %H:%M:%S", ngx.time())
end
function ngx.utctime()
  return os.date("!%Y-%m-%d %H:%M:%S", ngx.time())
end
function ngx.http_time(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end
function ngx.cookie_time(t)
  return os.date("!%a, %d-%b-%y %H:%M:%S GMT", t)
end
function ngx.update_time() end

-- encodings and digests
function ngx.encode_base64(s, no_padding)
  local out = tidegate.base64.encode(s)
  if no_padding then
    out = string.gsub(out, "=+$", "")
  end
  return out
end
function ngx.decode_base64(s)
  return tidegate.base64.decode(s)
end
ngx.md5 = tidegate.md5
ngx.md5_bin = tidegate.md5_bin
ngx.sha1_bin = tidegate.sha1_bin
ngx.hmac_sha1 = tidegate.hmac_sha1
function ngx.crc32_short(s)
  return tidegate.crc32(s)
end
ngx.crc32_long = ngx.crc32_short

local function escape(s, keep)
  return (string.gsub(tostring(s), "[^" .. keep .. "]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end
function ngx.escape_uri(s)
  return escape(s, "%w%-%._~")
end
function ngx.unescape_uri(s)
  s = string.gsub(tostring(s), "+", " ")
  return (string.gsub(s, "%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end
function ngx.encode_args(t)
  local keys = {}
  for k in pairs(t) do
    table.insert(keys, k)
  end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    local values = type(v) == "table" and v or { v }
    for _, x in ipairs(values) do
      if x == true then
        table.insert(parts, ngx.escape_uri(k))
      elseif x ~= false then
        table.insert(parts, ngx.escape_uri(k) .. "=" .. ngx.escape_uri(x))
      end
    end
  end
  return table.concat(parts, "&")
end
function ngx.decode_args(s, max)
  local out, n = {}, 0
  for pair in string.gmatch(s or "", "[^&]+") do
    n = n + 1
    if max and max > 0 and n > max then
      break
    end
    local k, v = string.match(pair, "^([^=]*)=(.*)$")
    if k then
      k, v = ngx.unescape_uri(k), ngx.unescape_uri(v)
    else
      k, v = ngx.unescape_uri(pair), true
    end
    local prev = out[k]
    if prev == nil then
      out[k] = v
    elseif type(prev) == "table" then
      table.insert(prev, v)
    else
      out[k] = { prev, v }
    end
  end
  return out
end
