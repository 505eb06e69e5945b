-- tidegate test lua/examples/route_by_header_test.lua
local t = tidegate.test
t.load("lua/examples/route_by_header.toml")
local route = t.plugin("route")

describe("route_by_header", function()
  it("keeps the location's upstream by default", function()
    local res = t.run(route, t.request{}, { location_upstream = "stable" })
    t.assert_eq(res.upstream, nil)
    t.assert_eq(res.headers["x-routed-to"], "stable")
  end)

  it("sends x-beta: 1 to the beta upstream", function()
    local res = t.run(route, t.request{ headers = { ["x-beta"] = "1" } }, { location_upstream = "stable" })
    t.assert_eq(res.upstream, "beta")
    t.assert_eq(res.headers["x-routed-to"], "beta")
  end)

  it("honours the beta cookie", function()
    local res = t.run(route, t.request{ headers = { cookie = "a=b; beta=1" } })
    t.assert_eq(res.upstream, "beta")
  end)
end)
