-- tidegate test lua/examples/response_header_test.lua
local t = tidegate.test
t.load("lua/examples/response_header.toml")
local harden = t.plugin("harden")

describe("response_header", function()
  it("adds the security headers and drops x-powered-by", function()
    local res = t.run(harden, t.request{}, {
      upstream_response = { headers = { ["x-powered-by"] = "LegacyFramework/1.0" }, body = "a page\n" },
    })
    t.assert_eq(res.headers["strict-transport-security"], "max-age=31536000")
    t.assert_eq(res.headers["x-content-type-options"], "nosniff")
    t.assert_eq(res.headers["x-powered-by"], nil)
    t.assert_eq(res.body, "a page\n")
  end)
end)
