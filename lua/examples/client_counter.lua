-- A per-client counter in a shared dict: count each client's requests in a fixed window and
-- answer 429 past the limit. The dict is shared by all worker threads, and `incr` is atomic,
-- so the limit holds however the connections are spread. The count expires with the window.
-- Phases: on_request, on_response. Config: limit (requests), window (seconds).
-- Needs `[lua] shared = { clients = N }`.
--
--   cargo run --release -- -c lua/examples/client_counter.toml
--   for i in 1 2 3 4; do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:6190/; done
local M = {}

function M.on_request(req, ctx, conf)
  local key = req.client_ip or "unknown"
  local n, err = tidegate.shared.clients:incr(key, 1, 0, conf.window)
  if not n then
    -- the key holds something other than a number (the dict evicts old keys when full,
    -- so this is not a capacity problem): let the request through rather than refuse it
    tidegate.log.warn("client counter: " .. err)
    return
  end
  ctx.count = n
  if n > conf.limit then
    return req:respond(429, "too many requests\n", {
      ["retry-after"] = tostring(math.ceil(tidegate.shared.clients:ttl(key) or conf.window)),
    })
  end
end

function M.on_response(req, resp, ctx, conf)
  if ctx.count then
    resp:set_header("x-ratelimit-remaining", tostring(math.max(conf.limit - ctx.count, 0)))
  end
end

return M
