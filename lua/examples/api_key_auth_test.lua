-- tidegate test lua/examples/api_key_auth_test.lua
local t = tidegate.test
t.load("lua/examples/api_key_auth.toml")
local auth = t.plugin("auth")

describe("api_key_auth", function()
  it("refuses a request without the key", function()
    local res = t.run(auth, t.request{ path = "/" })
    t.assert_eq(res.status, 401)
    t.assert_eq(tidegate.json.decode(res.body), { error = "unauthorized" })
    t.assert_true(res.answered, "answered before any upstream")
  end)

  it("refuses a wrong key", function()
    local res = t.run(auth, t.request{ headers = { ["x-api-key"] = "guess" } })
    t.assert_eq(res.status, 401)
  end)

  it("lets the right key through, names the user and logs it", function()
    local res = t.run(auth, t.request{ headers = { ["x-api-key"] = "s3cret" } },
      { upstream_response = { status = 200, body = "hello" } })
    t.assert_eq(res.status, 200)
    t.assert_eq(res.body, "hello")
    t.assert_eq(res.headers["x-user"], "demo")
    t.assert_eq(res.log.user, "demo")
    t.assert_eq(res.request.headers["x-api-key"], "s3cret")
  end)
end)
