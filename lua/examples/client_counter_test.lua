-- tidegate test lua/examples/client_counter_test.lua
local t = tidegate.test
t.load("lua/examples/client_counter.toml")
local counter = t.plugin("counter")

describe("client_counter", function()
  it("counts down the remaining requests", function()
    local res = t.run(counter, t.request{ client_ip = "10.0.0.1" })
    t.assert_eq(res.status, 200)
    t.assert_eq(res.headers["x-ratelimit-remaining"], "2")
  end)

  it("answers 429 past the limit, per client", function()
    for i = 1, 3 do
      t.assert_eq(t.run(counter, t.request{ client_ip = "10.0.0.2" }).status, 200, "request " .. i)
    end
    local res = t.run(counter, t.request{ client_ip = "10.0.0.2" })
    t.assert_eq(res.status, 429)
    t.assert_match(res.headers["retry-after"], "^%d+$")
    -- another client has its own count
    t.assert_eq(t.run(counter, t.request{ client_ip = "10.0.0.3" }).status, 200)
  end)

  it("starts each test with an empty dict", function()
    local res = t.run(counter, t.request{ client_ip = "10.0.0.2" })
    t.assert_eq(res.headers["x-ratelimit-remaining"], "2")
  end)
end)
