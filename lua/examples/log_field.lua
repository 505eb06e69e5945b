-- Custom access-log fields: classify the client (bot or browser) and the request size, and
-- write both into the access log through `{:client}` and `{:size}` in the template.
-- Phase: on_log (after the response is sent; it can never fail the request).
--
--   cargo run --release -- -c lua/examples/log_field.toml
--   curl http://127.0.0.1:6190/ -A 'Googlebot/2.1'   # the log line ends: client=bot size=small
local M = {}

local BOTS = { "bot", "crawler", "spider", "curl" }

function M.on_log(req, resp, ctx, conf)
  local ua = string.lower(req:header("user-agent") or "")
  local client = "browser"
  for _, word in ipairs(BOTS) do
    if string.find(ua, word, 1, true) then
      client = "bot"
      break
    end
  end
  tidegate.log.set_field("client", client)
  local len = tonumber(resp and resp:header("content-length") or "0") or 0
  tidegate.log.set_field("size", len > conf.large and "large" or "small")
end

return M
