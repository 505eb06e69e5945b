-- The Lua half of `tidegate test`: describe/it, the assertions and their diffs. Loaded into
-- each test file's VM before the file; `t` (tidegate.test) is filled in by Rust first.
local t = ...
local cases, stack = {}, {}

local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then
    return string.format("%q", v)
  elseif type(v) ~= "table" then
    return tostring(v)
  elseif depth > 4 then
    return "{...}"
  end
  local keys = {}
  for k in pairs(v) do
    table.insert(keys, k)
  end
  table.sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k or ("[" .. tostring(k) .. "]")
    table.insert(parts, key .. " = " .. show(v[k], depth + 1))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function same(a, b)
  if type(a) ~= type(b) then
    return false
  end
  if type(a) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

-- the lines of two multi-line strings, marking where they differ
local function line_diff(expected, got)
  local function lines(s)
    local out = {}
    for l in (s .. "\n"):gmatch("(.-)\n") do
      table.insert(out, l)
    end
    return out
  end
  local e, g = lines(expected), lines(got)
  local out = {}
  for i = 1, math.max(#e, #g) do
    if e[i] == g[i] then
      table.insert(out, "    " .. e[i])
    else
      if e[i] ~= nil then
        table.insert(out, "  - " .. e[i])
      end
      if g[i] ~= nil then
        table.insert(out, "  + " .. g[i])
      end
    end
  end
  return table.concat(out, "\n")
end

local function fail(msg, what, detail)
  error(tostring(msg or what) .. "\n" .. detail, 3)
end

function t.assert_eq(got, expected, msg)
  if same(got, expected) then
    return
  end
  local detail
  if type(got) == "string" and type(expected) == "string" and (got:find("\n") or expected:find("\n")) then
    detail = "  (- expected, + got)\n" .. line_diff(expected, got)
  else
    detail = "  expected: " .. show(expected) .. "\n  got:      " .. show(got)
  end
  fail(msg, "not equal", detail)
end

function t.assert_match(got, pattern, msg)
  if type(got) == "string" and string.find(got, pattern) then
    return
  end
  fail(msg, "no match", "  pattern: " .. show(pattern) .. "\n  got:     " .. show(got))
end

function t.assert_true(got, msg)
  if got then
    return
  end
  fail(msg, "not true", "  expected a true value, got " .. show(got))
end

function t.describe(name, fn)
  table.insert(stack, tostring(name))
  fn()
  table.remove(stack)
end

function t.it(name, fn)
  local prefix = table.concat(stack, " › ")
  if prefix ~= "" then
    prefix = prefix .. " › "
  end
  table.insert(cases, { name = prefix .. tostring(name), fn = fn })
end

t.show = show
describe = t.describe
it = t.it
return cases
