-- Part of the `ngx` table (see ngx.lua): ngx.shared.DICT over tidegate.shared. Included into each openresty plugin's
-- module as the body of a function called with the table.
local ngx = ...
-- ngx.shared.DICT: OpenResty's return values over tidegate.shared
local DictMethods = {}
DictMethods.__index = DictMethods
local function exptime(t)
  if t == nil or t == 0 then
    return nil
  end
  return t
end
function DictMethods:get(key)
  return self.d:get(key)
end
function DictMethods:set(key, value, t)
  local ok, err = self.d:set(key, value, exptime(t))
  return ok, err, false
end
DictMethods.safe_set = DictMethods.set
function DictMethods:add(key, value, t)
  local ok, err = self.d:add(key, value, exptime(t))
  return ok, err, false
end
DictMethods.safe_add = DictMethods.add
function DictMethods:replace(key, value, t)
  if self.d:get(key) == nil then
    return false, "not found", false
  end
  return self:set(key, value, t)
end
function DictMethods:incr(key, value, init, init_ttl)
  local v, err = self.d:incr(key, value, init, exptime(init_ttl))
  return v, err, false
end
function DictMethods:delete(key)
  self.d:delete(key)
end
function DictMethods:flush_all()
  self.d:flush_all()
end
function DictMethods:ttl(key)
  local t = self.d:ttl(key)
  if t == nil then
    return nil, "not found"
  end
  return t
end
local dicts = {}
ngx.shared = setmetatable({}, {
  __index = function(_, name)
    local d = dicts[name]
    if not d then
      d = setmetatable({ d = tidegate.shared[name] }, DictMethods)
      dicts[name] = d
    end
    return d
  end,
})
