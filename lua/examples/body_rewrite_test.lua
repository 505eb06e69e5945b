-- tidegate test lua/examples/body_rewrite_test.lua
local t = tidegate.test
t.load("lua/examples/body_rewrite.toml")
local rewrite = t.plugin("rewrite")

local page = '<a href="http://app.internal:8080/docs">docs</a>'

describe("body_rewrite", function()
  it("rewrites links in an HTML body", function()
    local res = t.run(rewrite, t.request{ path = "/" }, {
      upstream_response = { headers = { ["content-type"] = "text/html" }, body = page },
    })
    t.assert_eq(res.body, '<a href="https://www.example.com/docs">docs</a>')
  end)

  it("finds a match split across two chunks", function()
    local res = t.run(rewrite, t.request{}, {
      upstream_response = {
        headers = { ["content-type"] = "text/html; charset=utf-8" },
        body = { '<a href="http://app.inte', 'rnal:8080/">home</a>' },
      },
    })
    t.assert_eq(res.body, '<a href="https://www.example.com/">home</a>')
  end)

  it("leaves other content types alone", function()
    local res = t.run(rewrite, t.request{}, {
      upstream_response = { headers = { ["content-type"] = "application/json" }, body = page },
    })
    t.assert_eq(res.body, page)
  end)
end)
