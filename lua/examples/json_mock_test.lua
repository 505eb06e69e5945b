-- tidegate test lua/examples/json_mock_test.lua
local t = tidegate.test
t.load("lua/examples/json_mock.toml")
local api = t.plugin("mock-api")

describe("json_mock", function()
  it("answers a known user as JSON", function()
    local res = t.run(api, t.request{ path = "/users/1" })
    t.assert_eq(res.status, 200)
    t.assert_match(res.headers["content-type"], "application/json")
    local user = tidegate.json.decode(res.body)
    t.assert_eq({ user.id, user.name, user.role }, { "1", "Ada", "admin" })
  end)

  it("answers 404 for an unknown user and 405 for other methods", function()
    t.assert_eq(t.run(api, t.request{ path = "/users/9" }).status, 404)
    local res = t.run(api, t.request{ method = "POST", path = "/users/1" })
    t.assert_eq(res.status, 405)
    t.assert_eq(res.headers.allow, "GET")
  end)
end)
