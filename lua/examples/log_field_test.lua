-- tidegate test lua/examples/log_field_test.lua
local t = tidegate.test
t.load("lua/examples/log_field.toml")
local classify = t.plugin("classify")

describe("log_field", function()
  it("marks bots and small answers", function()
    local res = t.run(classify, t.request{ headers = { ["user-agent"] = "Googlebot/2.1" } }, {
      upstream_response = { headers = { ["content-length"] = "6" }, body = "hello\n" },
    })
    t.assert_eq(res.log, { client = "bot", size = "small" })
  end)

  it("marks browsers and large answers", function()
    local res = t.run(classify, t.request{ headers = { ["user-agent"] = "Mozilla/5.0" } }, {
      upstream_response = { headers = { ["content-length"] = "4096" }, body = string.rep("x", 4096) },
    })
    t.assert_eq(res.log.client, "browser")
    t.assert_eq(res.log.size, "large")
  end)
end)
