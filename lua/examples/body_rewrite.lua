-- A body rewrite: replace one string with another in the response body as it streams, for
-- example internal links with public ones. A match may straddle two chunks, so the last
-- few bytes of each chunk (one less than the search string) wait for the next one; nothing
-- else is buffered. The length changes, so tidegate drops Content-Length and sends the body
-- chunked. Phases: on_response, on_body. Config: from, to, types (content types to rewrite).
--
--   cargo run --release -- -c lua/examples/body_rewrite.toml
--   curl -i http://127.0.0.1:6190/
local M = {}

local function wanted(resp, conf)
  local ct = resp:header("content-type") or ""
  for _, t in ipairs(conf.types) do
    if string.find(ct, t, 1, true) == 1 then
      return true
    end
  end
  return false
end

function M.on_response(req, resp, ctx, conf)
  ctx.rewrite = wanted(resp, conf)
end

function M.on_body(resp, chunk, eof, ctx, conf)
  if not ctx.rewrite then
    return nil -- unchanged
  end
  local data = (ctx.carry or "") .. chunk
  local out, pos = {}, 1
  while true do
    local i, j = string.find(data, conf.from, pos, true)
    if not i then
      break
    end
    table.insert(out, string.sub(data, pos, i - 1))
    table.insert(out, conf.to)
    pos = j + 1
  end
  local rest = string.sub(data, pos)
  local keep = #conf.from - 1
  if eof or #rest <= keep then
    ctx.carry = not eof and rest or nil
    if eof then
      table.insert(out, rest)
    end
  else
    -- a match can only start in the last `keep` bytes: hold them back
    table.insert(out, string.sub(rest, 1, #rest - keep))
    ctx.carry = string.sub(rest, #rest - keep + 1)
  end
  return table.concat(out)
end

return M
