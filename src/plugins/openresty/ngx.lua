-- The `ngx` table of an `openresty` plugin, over tidegate's Lua API. One per worker VM and
-- plugin; the request it speaks of is CUR, set by the hooks below before the snippet runs
-- and again after anything that waits (another request may have run meanwhile).
local CUR = nil
local EXIT = {}

local function unsupported(what)
  error(what .. " is not supported by tidegate (docs/openresty.md)", 3)
end

local ngx = {}

-- status and log-level constants
for name, code in pairs({
  OK = 0, ERROR = -1, AGAIN = -2, DONE = -4, DECLINED = -5,
  HTTP_CONTINUE = 100, HTTP_SWITCHING_PROTOCOLS = 101, HTTP_OK = 200, HTTP_CREATED = 201,
  HTTP_ACCEPTED = 202, HTTP_NO_CONTENT = 204, HTTP_PARTIAL_CONTENT = 206,
  HTTP_SPECIAL_RESPONSE = 300, HTTP_MOVED_PERMANENTLY = 301, HTTP_MOVED_TEMPORARILY = 302,
  HTTP_SEE_OTHER = 303, HTTP_NOT_MODIFIED = 304, HTTP_TEMPORARY_REDIRECT = 307,
  HTTP_PERMANENT_REDIRECT = 308, HTTP_BAD_REQUEST = 400, HTTP_UNAUTHORIZED = 401,
  HTTP_PAYMENT_REQUIRED = 402, HTTP_FORBIDDEN = 403, HTTP_NOT_FOUND = 404,
  HTTP_NOT_ALLOWED = 405, HTTP_NOT_ACCEPTABLE = 406, HTTP_REQUEST_TIMEOUT = 408,
  HTTP_CONFLICT = 409, HTTP_GONE = 410, HTTP_UPGRADE_REQUIRED = 426,
  HTTP_TOO_MANY_REQUESTS = 429, HTTP_CLOSE = 444, HTTP_ILLEGAL = 451,
  HTTP_INTERNAL_SERVER_ERROR = 500, HTTP_METHOD_NOT_IMPLEMENTED = 501,
  HTTP_BAD_GATEWAY = 502, HTTP_SERVICE_UNAVAILABLE = 503, HTTP_GATEWAY_TIMEOUT = 504,
  HTTP_VERSION_NOT_SUPPORTED = 505, HTTP_INSUFFICIENT_STORAGE = 507,
  STDERR = 0, EMERG = 1, ALERT = 2, CRIT = 3, ERR = 4, WARN = 5, NOTICE = 6, INFO = 7, DEBUG = 8,
  HTTP_GET = "GET", HTTP_HEAD = "HEAD", HTTP_PUT = "PUT", HTTP_POST = "POST",
  HTTP_DELETE = "DELETE", HTTP_OPTIONS = "OPTIONS", HTTP_PATCH = "PATCH",
}) do
  ngx[name] = code
end
ngx.null = tidegate.json.null

local function str(v)
  if v == nil then
    return "nil"
  elseif v == ngx.null then
    return "null"
  elseif type(v) == "table" then
    local parts = {}
    for _, x in ipairs(v) do
      table.insert(parts, str(x))
    end
    return table.concat(parts)
  end
  return tostring(v)
end

-- ngx.log(level, ...)
function ngx.log(level, ...)
  local parts = {}
  for i = 1, select("#", ...) do
    table.insert(parts, str((select(i, ...))))
  end
  local msg = table.concat(parts)
  if level <= 4 then
    tidegate.log.error(msg)
  elseif level == 5 then
    tidegate.log.warn(msg)
  elseif level <= 7 then
    tidegate.log.info(msg)
  else
    tidegate.log.debug(msg)
  end
end

-- @parts

local function norm(name)
  return string.lower((string.gsub(name, "_", "-")))
end

-- ngx.var: the request's variables; writes are kept for the request (and logged as fields)
ngx.var = setmetatable({}, {
  __index = function(_, name)
    local c = CUR
    if not c then
      error("ngx.var used outside of a request", 2)
    end
    local mine = c.ctx.__ngx_vars
    if mine and mine[name] ~= nil then
      return mine[name]
    end
    local req = c.req
    if name == "status" then
      return c.resp and tostring(c.resp.status) or nil
    elseif name == "remote_addr" or name == "binary_remote_addr" then
      return req.client_ip
    elseif name == "request_method" then
      return req.method
    elseif name == "query_string" then
      return req.query
    elseif name == "is_args" then
      return (req.query and req.query ~= "") and "?" or ""
    elseif name == "content_type" then
      return req:header("content-type")
    elseif name == "content_length" then
      return req:header("content-length")
    elseif name == "server_protocol" then
      return "HTTP/1.1"
    elseif name == "http_host" then
      return req:header("host")
    elseif string.sub(name, 1, 4) == "arg_" then
      return req:query_arg(string.sub(name, 5))
    elseif string.sub(name, 1, 5) == "http_" then
      return req:header(norm(string.sub(name, 6)))
    elseif string.sub(name, 1, 7) == "cookie_" then
      local want = string.sub(name, 8)
      for k, v in string.gmatch(req:header("cookie") or "", "([^=;%s]+)=([^;]*)") do
        if k == want then
          return v
        end
      end
      return nil
    elseif name == "request_time" then
      local start = c.ctx.__ngx_start
      return string.format("%.3f", start and (tidegate.now() - start) or 0)
    end
    return req:var(name)
  end,
  __newindex = function(_, name, value)
    local c = CUR
    if not c then
      error("ngx.var used outside of a request", 2)
    end
    c.ctx.__ngx_vars = c.ctx.__ngx_vars or {}
    c.ctx.__ngx_vars[name] = value
    tidegate.log.set_field(name, value)
  end,
})

-- a header of `target` (req or resp) as ngx sets one: nil removes, a table sets several
local function set_on(target, key, value)
  if value == nil then
    target:remove_header(key)
  elseif type(value) == "table" then
    target:remove_header(key)
    for _, v in ipairs(value) do
      target:add_header(key, tostring(v))
    end
  else
    target:set_header(key, tostring(value))
  end
end

-- ngx.header: the response's headers (before the response exists, kept and applied to it)
local function pending(c)
  c.ctx.__ngx_headers = c.ctx.__ngx_headers or {}
  return c.ctx.__ngx_headers
end
ngx.header = setmetatable({}, {
  __index = function(_, name)
    local c = CUR
    local key = norm(name)
    if c.resp then
      return c.resp:header(key)
    end
    local v = pending(c)[key]
    if v == false then
      return nil
    end
    return v
  end,
  __newindex = function(_, name, value)
    local c = CUR
    local key = norm(name)
    if c.resp then
      set_on(c.resp, key, value)
    else
      pending(c)[key] = (value == nil) and false or value
    end
  end,
})

-- ngx.req
ngx.req = {}
function ngx.req.get_method()
  return CUR.req.method
end
function ngx.req.get_headers(max, raw)
  local out = {}
  for k, v in pairs(CUR.req:headers()) do
    out[string.lower(k)] = v
  end
  return setmetatable(out, {
    __index = function(t, k)
      if type(k) == "string" then
        return rawget(t, norm(k))
      end
    end,
  })
end
function ngx.req.set_header(name, value)
  set_on(CUR.req, norm(name), value)
end
function ngx.req.clear_header(name)
  CUR.req:remove_header(norm(name))
end
function ngx.req.get_uri_args(max)
  return ngx.decode_args(CUR.req.query or "", max)
end
function ngx.req.get_post_args(max)
  return ngx.decode_args(ngx.req.get_body_data() or "", max)
end
function ngx.req.set_uri_args(args)
  if type(args) == "table" then
    args = ngx.encode_args(args)
  end
  CUR.req.query = args
end
function ngx.req.get_uri()
  return CUR.req.path
end
function ngx.req.set_uri(uri, jump)
  if jump then
    unsupported("ngx.req.set_uri with jump = true")
  end
  CUR.req.path = uri
end
function ngx.req.read_body() end
function ngx.req.discard_body() end
function ngx.req.get_body_data()
  local c = CUR
  local body = c.req:body()
  CUR = c
  if body == "" then
    return nil
  end
  return body
end
function ngx.req.start_time()
  return CUR.ctx.__ngx_start or tidegate.now()
end
function ngx.req.http_version()
  return 1.1
end
function ngx.req.is_internal()
  return false
end

-- output: ngx.say / ngx.print buffer an answer in the request phase
function ngx.print(...)
  local c = CUR
  if c.phase ~= "access" and c.phase ~= "rewrite" then
    unsupported("ngx.print outside rewrite/access")
  end
  for i = 1, select("#", ...) do
    table.insert(c.out, str((select(i, ...))))
  end
  return 1
end
function ngx.say(...)
  ngx.print(...)
  table.insert(CUR.out, "\n")
  return 1
end
function ngx.exit(status)
  error({ [EXIT] = status }, 0)
end
function ngx.redirect(url, status)
  local c = CUR
  pending(c).location = url
  error({ [EXIT] = status or 302 }, 0)
end
function ngx.flush() end
function ngx.eof() end

-- subrequests: ngx.location.capture(uri, {method, body, args}) as an HTTP request to
-- conf.capture_base (this server's own address)
ngx.location = {}
function ngx.location.capture(uri, opts)
  local c = CUR
  opts = opts or {}
  local base = c.conf.capture_base
  if not base then
    error("ngx.location.capture needs `capture_base` in the plugin's config (e.g. \"http://127.0.0.1:8080\")", 2)
  end
  local args = opts.args
  if type(args) == "table" then
    args = ngx.encode_args(args)
  end
  local url = base .. uri .. ((args and args ~= "") and ("?" .. args) or "")
  local methods = { [2] = "GET", [4] = "HEAD", [8] = "POST", [16] = "PUT", [32] = "DELETE" }
  local res, err = tidegate.http.request({
    method = methods[opts.method or 2] or "GET",
    url = url,
    body = opts.body,
    headers = c.req:headers(),
  })
  CUR = c
  if not res then
    ngx.log(ngx.ERR, "ngx.location.capture ", uri, ": ", err)
    return { status = 502, header = {}, body = "", truncated = false }
  end
  return { status = res.status, header = res.headers, body = res.body, truncated = false }
end
ngx.HTTP_METHOD_GET, ngx.HTTP_METHOD_POST = 2, 8

-- anything else: a clear error, never a silent nil
local known_missing = {
  timer = "ngx.timer", thread = "ngx.thread", socket = "ngx.socket (cosockets)",
  sleep = "ngx.sleep", semaphore = "ngx.semaphore", exec = "ngx.exec", worker = "ngx.worker",
  on_abort = "ngx.on_abort", balancer = "ngx.balancer",
}
setmetatable(ngx, {
  __index = function(_, name)
    if name == "status" then
      local c = CUR
      if c.resp then
        return c.resp.status
      end
      return c.status or 0
    elseif name == "ctx" then
      return CUR.ctx
    elseif name == "arg" then
      return CUR.arg
    end
    unsupported(known_missing[name] or ("ngx." .. tostring(name)))
  end,
  __newindex = function(_, name, value)
    if name == "status" then
      local c = CUR
      if c.resp then
        c.resp.status = value
      else
        c.status = value
      end
      return
    end
    error("ngx." .. tostring(name) .. " cannot be set", 2)
  end,
})

-- require "cjson" / "cjson.safe" / "ngx"
local function json_escape_slashes(s)
  return (string.gsub(s, "/", "\\/"))
end
local cjson = {
  encode = function(v)
    return json_escape_slashes(tidegate.json.encode(v))
  end,
  decode = function(s)
    return tidegate.json.decode(s)
  end,
  null = tidegate.json.null,
  empty_array = setmetatable({}, { __index = function() return nil end }),
  encode_empty_table_as_object = function() end,
  decode_array_with_array_mt = function() end,
}
local cjson_safe = {
  encode = function(v)
    local ok, r = pcall(cjson.encode, v)
    if ok then
      return r
    end
    return nil, r
  end,
  decode = function(s)
    local ok, r = pcall(cjson.decode, s)
    if ok then
      return r
    end
    return nil, r
  end,
  null = tidegate.json.null,
}
local compat_modules = { cjson = cjson, ["cjson.safe"] = cjson_safe, ngx = ngx }
local function compat_require(name)
  local m = compat_modules[name]
  if m then
    return m
  end
  if name == "resty.core" then
    return true
  end
  return require(name)
end

-- run the snippet in phase `phase` on CUR; an ngx.exit comes back as its status
local function run(snippet, c)
  CUR = c
  local ok, e = pcall(snippet, ngx, compat_require)
  CUR = c
  if ok then
    return nil
  end
  if type(e) == "table" and e[EXIT] ~= nil then
    return e[EXIT]
  end
  error(e, 0)
end

return function(snippet, phase)
  local M = {}
  local function answer(req, c, status)
    local headers = {}
    for k, v in pairs(c.ctx.__ngx_headers or {}) do
      if v ~= false then
        headers[k] = type(v) == "table" and table.concat(v, ", ") or tostring(v)
      end
    end
    c.ctx.__ngx_headers = nil
    local body = table.concat(c.out)
    if body ~= "" and headers["content-type"] == nil then
      headers["content-type"] = "text/plain"
    end
    return req:respond(status, body, headers)
  end
  if phase == "rewrite" or phase == "access" then
    M.on_request = function(req, ctx, conf)
      ctx.__ngx_start = ctx.__ngx_start or tidegate.now()
      local c = { req = req, ctx = ctx, conf = conf, phase = phase, out = {} }
      local exit = run(snippet, c)
      if exit ~= nil and exit >= 200 then
        return answer(req, c, exit)
      elseif #c.out > 0 then
        return answer(req, c, c.status or 200)
      elseif exit == ngx.ERROR then
        return req:respond(500, "")
      end
    end
    M.on_response = function(req, resp, ctx, conf)
      for k, v in pairs(ctx.__ngx_headers or {}) do
        if v == false then
          resp:remove_header(k)
        else
          resp:set_header(k, type(v) == "table" and table.concat(v, ", ") or tostring(v))
        end
      end
    end
  elseif phase == "header_filter" then
    M.on_response = function(req, resp, ctx, conf)
      run(snippet, { req = req, resp = resp, ctx = ctx, conf = conf, phase = phase, out = {} })
    end
  elseif phase == "body_filter" then
    -- on_body has no req: the response phase keeps it for ngx.var
    M.on_response = function(req, resp, ctx, conf)
      ctx.__ngx_req = req
    end
    M.on_body = function(resp, chunk, eof, ctx, conf)
      local c = { resp = resp, ctx = ctx, conf = conf, phase = phase, out = {}, arg = { chunk, eof } }
      c.req = ctx.__ngx_req
      run(snippet, c)
      local out = c.arg[1]
      if out ~= chunk then
        return out == nil and "" or tostring(out)
      end
      return nil
    end
  elseif phase == "log" then
    M.on_log = function(req, resp, ctx, conf)
      run(snippet, { req = req, resp = resp, ctx = ctx, conf = conf, phase = phase, out = {} })
    end
  end
  return M
end
