-- Part of the `ngx` table (see ngx.lua): ngx.re over tidegate's linear-time regex engine. Included into each openresty plugin's
-- module as the body of a function called with the table.
local ngx = ...
-- ngx.re: PCRE options mapped onto the linear-time engine
local function re_pattern(regex, opts)
  local prefix, anchored = "", false
  for flag in string.gmatch(opts or "", ".") do
    if flag == "i" or flag == "m" or flag == "s" or flag == "x" then
      prefix = prefix .. flag
    elseif flag == "a" then
      anchored = true
    elseif flag == "u" or flag == "U" then
      prefix = prefix .. "u"
    elseif not string.find("jodD", flag, 1, true) then
      error("ngx.re: option `" .. flag .. "` is not supported by tidegate", 3)
    end
  end
  local p = regex
  if anchored then
    p = "^(?:" .. p .. ")"
  end
  if prefix ~= "" then
    p = "(?" .. string.gsub(prefix, "u", "") .. ")" .. p
    p = string.gsub(p, "^%(%?%)", "")
  end
  return p
end

-- the first match at or after byte `init` (1-based): from, to, captures
local function re_at(subject, pattern, init)
  local rest = string.sub(subject, init)
  local from, to = tidegate.re.find(rest, pattern)
  if not from then
    return nil
  end
  local m = tidegate.re.match(rest, pattern)
  return from + init - 1, to + init - 1, m
end

-- the next match from `ctx.pos` (1 without a ctx), moving `ctx.pos` past it
local function re_next(subject, regex, opts, ctx)
  local from, to, m = re_at(subject, re_pattern(regex, opts), (ctx and ctx.pos) or 1)
  if from and ctx then
    ctx.pos = to + 1
  end
  return from, to, m
end

ngx.re = {}
function ngx.re.match(subject, regex, opts, ctx)
  local from, _, m = re_next(subject, regex, opts, ctx)
  if not from then
    return nil
  end
  local out = {}
  for k, v in pairs(m) do
    out[k] = v
  end
  for i = 1, #m do
    if out[i] == nil then
      out[i] = false
    end
  end
  return out
end
function ngx.re.find(subject, regex, opts, ctx, nth)
  local from, to, m = re_next(subject, regex, opts, ctx)
  if not from then
    return nil
  end
  if nth and nth > 0 then
    local cap = m[nth]
    if not cap then
      return nil
    end
    local s = string.find(subject, cap, from, true)
    return s, s + #cap - 1
  end
  return from, to
end
function ngx.re.gmatch(subject, regex, opts)
  local pattern, pos = re_pattern(regex, opts), 1
  return function()
    if pos > #subject + 1 then
      return nil
    end
    local from, to, m = re_at(subject, pattern, pos)
    if not from then
      pos = #subject + 2
      return nil
    end
    pos = (to >= from) and (to + 1) or (from + 1)
    return m
  end
end

-- `$0`, `$1`, `${1}` and `$$` in a replacement
local function expand(repl, m)
  return (string.gsub(repl, "%$(%b{})", function(name)
    return m[tonumber(string.sub(name, 2, -2))] or ""
  end):gsub("%$(%d)", function(d)
    return m[tonumber(d)] or ""
  end):gsub("%$%$", "$"))
end

local function re_replace(subject, regex, replace, opts, max)
  local pattern = re_pattern(regex, opts)
  local out, pos, n = {}, 1, 0
  while pos <= #subject + 1 and (max == nil or n < max) do
    local from, to, m = re_at(subject, pattern, pos)
    if not from then
      break
    end
    table.insert(out, string.sub(subject, pos, from - 1))
    if type(replace) == "function" then
      table.insert(out, tostring(replace(m)))
    else
      table.insert(out, expand(tostring(replace), m))
    end
    n = n + 1
    if to < from then
      table.insert(out, string.sub(subject, from, from))
      pos = from + 1
    else
      pos = to + 1
    end
  end
  table.insert(out, string.sub(subject, pos))
  return table.concat(out), n
end
function ngx.re.sub(subject, regex, replace, opts)
  return re_replace(subject, regex, replace, opts, 1)
end
function ngx.re.gsub(subject, regex, replace, opts)
  return re_replace(subject, regex, replace, opts, nil)
end
