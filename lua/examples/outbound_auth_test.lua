-- tidegate test lua/examples/outbound_auth_test.lua
local t = tidegate.test
t.load("lua/examples/outbound_auth.toml")
local check = t.plugin("check-token")

describe("outbound_auth", function()
  it("asks the auth service and passes the user on", function()
    t.http_mock("http://127.0.0.1:6191/check", { status = 200, headers = { ["x-user"] = "ada" } })
    local res = t.run(check, t.request{ headers = { authorization = "Bearer letmein" } })
    t.assert_eq(res.status, 200)
    t.assert_eq(res.request.headers["x-user"], "ada")
    t.assert_eq(res.headers["x-user"], "ada")
    local calls = t.http_calls()
    t.assert_eq(#calls, 1)
    t.assert_eq(calls[1].headers.authorization, "Bearer letmein")
  end)

  it("refuses a token the service rejects", function()
    t.http_mock("http://127.0.0.1:6191/check", { status = 403 })
    local res = t.run(check, t.request{ headers = { authorization = "Bearer nope" } })
    t.assert_eq(res.status, 401)
  end)

  it("answers 503 when the service is down", function()
    t.http_mock("http://127.0.0.1:6191/*", { error = "connection refused" })
    local res = t.run(check, t.request{ headers = { authorization = "Bearer letmein" } })
    t.assert_eq(res.status, 503)
  end)

  it("needs a bearer token before calling anyone", function()
    t.assert_eq(t.run(check, t.request{}).status, 401)
    t.assert_eq(#t.http_calls(), 0)
  end)
end)
