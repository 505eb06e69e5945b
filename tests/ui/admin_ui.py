#!/usr/bin/env python3
"""The admin web UI in a real browser (Chromium, headless, driven by Selenium through
chromedriver), run by tests/admin_ui.rs against a tidegate it started:

    admin_ui.py ADMIN_PORT PROXY_PORT PASSWORD SCREENSHOT_DIR

Logs in (a wrong password first), sees the dashboard's request count move while the Rust
test's load runs, adds a location through the form (a bad upstream first: the error shows
next to its field), applies it, and checks the proxy serves the new route. Screenshots of
each page go to SCREENSHOT_DIR. Exits non-zero with the reason on any failure; every wait is
bounded.
"""
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

admin, proxy, password, shots = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
os.makedirs(shots, exist_ok=True)

opts = Options()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=1100,900", "--no-proxy-server", "--disable-extensions"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
driver.set_page_load_timeout(20)
wait = WebDriverWait(driver, 20)


def shot(name):
    driver.save_screenshot(os.path.join(shots, f"{name}.png"))


def text(css):
    return driver.find_element(By.CSS_SELECTOR, css).text


try:
    driver.get(f"http://127.0.0.1:{admin}/")
    wait.until(ec.visibility_of_element_located((By.ID, "login")))
    # every input has its label (keyboard and screen-reader users)
    for i in driver.find_elements(By.CSS_SELECTOR, "input, select"):
        iid = i.get_attribute("id")
        assert driver.find_elements(By.CSS_SELECTOR, f'label[for="{iid}"]'), f"no label for #{iid}"
    shot("admin-login")
    driver.find_element(By.ID, "user").send_keys("ada")
    driver.find_element(By.ID, "password").send_keys("wrong" + Keys.ENTER)
    wait.until(lambda d: "wrong user or password" in text("#login-error"))
    # the session cookie is HttpOnly: the page's scripts cannot read it
    assert "tidegate_admin" not in driver.execute_script("return document.cookie"), "cookie readable"
    pw = driver.find_element(By.ID, "password")
    pw.clear()
    pw.send_keys(password + Keys.ENTER)
    wait.until(ec.visibility_of_element_located((By.ID, "dashboard-view")))
    assert "tidegate_admin" not in driver.execute_script("return document.cookie"), "cookie readable"

    # the dashboard moves while the load runs
    first = int(text("#total") or "0")
    WebDriverWait(driver, 20).until(lambda d: int(text("#total") or "0") > first + 5)
    WebDriverWait(driver, 20).until(lambda d: float(text("#rate") or "0") > 0)
    wait.until(lambda d: "backend" in text("#upstreams"))
    shot("admin-dashboard")

    # add a location: a bad upstream first
    driver.find_element(By.ID, "nav-locations").click()
    wait.until(ec.visibility_of_element_located((By.ID, "add-location")))
    wait.until(lambda d: "all" in text("#locations"))
    driver.find_element(By.ID, "loc-name").send_keys("shop")
    driver.find_element(By.ID, "loc-path").send_keys("/shop")
    driver.find_element(By.ID, "loc-upstream").send_keys("ghost")
    driver.find_element(By.ID, "preview").click()
    err = '.field-error[data-for="upstream"]'
    wait.until(lambda d: "ghost" in text(err))
    assert driver.find_element(By.ID, "loc-upstream").get_attribute("aria-invalid") == "true"
    assert not driver.find_element(By.ID, "apply").is_enabled()
    shot("admin-location-error")

    # fixed: the preview shows the diff, apply writes it
    up = driver.find_element(By.ID, "loc-upstream")
    up.clear()
    up.send_keys("backend")
    driver.find_element(By.ID, "preview").click()
    wait.until(lambda d: "[locations.shop]" in text("#diff"))
    assert text(err) == "", "the error is gone"
    shot("admin-location-diff")
    driver.find_element(By.ID, "apply").click()
    wait.until(lambda d: "applied" in text("#form-ok"))
    wait.until(lambda d: "shop" in text("#locations"))
    shot("admin-locations")

    # any table's entry as a form: an upstream's algo, a bad value first
    driver.find_element(By.ID, "nav-tables").click()
    wait.until(ec.visibility_of_element_located((By.ID, "table-pick")))
    Select(driver.find_element(By.ID, "table-pick")).select_by_value("upstreams")
    wait.until(lambda d: d.find_elements(By.XPATH, '//ul[@id="entries"]//button[text()="backend"]'))
    driver.find_element(By.XPATH, '//ul[@id="entries"]//button[text()="backend"]').click()
    wait.until(ec.visibility_of_element_located((By.ID, "field-addrs")))
    extra = driver.find_element(By.ID, "entry-extra")
    extra.send_keys('{"algo": "fastest"}')
    driver.find_element(By.ID, "entry-preview").click()
    wait.until(lambda d: "unknown algo" in text('#entry-extra ~ .field-error, #entry-error') or
               "unknown algo" in text("#entry-error"))
    extra.clear()
    extra.send_keys('{"algo": "least_conn"}')
    driver.find_element(By.ID, "entry-preview").click()
    wait.until(lambda d: 'algo = "least_conn"' in text("#entry-diff"))
    driver.find_element(By.ID, "entry-apply").click()
    wait.until(lambda d: "Applied" in text("#entry-ok"))
    shot("admin-tables")

    # the Lua editor: a syntax error is shown at its line and nothing is saved
    driver.find_element(By.ID, "nav-scripts").click()
    wait.until(lambda d: "gate.lua" in text("#script-pick"))
    area = driver.find_element(By.ID, "script-text")
    wait.until(lambda d: "on_request" in area.get_attribute("value"))
    assert driver.find_elements(By.CSS_SELECTOR, "#script-highlight .tok-k"), "keywords highlighted"
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(Keys.DELETE)
    area.send_keys("local M = {}\nfunction M.on_request(req)\n  if then\nend\nreturn M\n")
    driver.find_element(By.ID, "script-save").click()
    wait.until(lambda d: text("#script-error").startswith("line 3:"))
    assert driver.find_elements(By.CSS_SELECTOR, '#script-highlight .line-bad[data-line="3"]')
    shot("admin-script-error")
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(Keys.DELETE)
    area.send_keys("local M = {}\nfunction M.on_response(req, resp)\n  resp:set_header('x-edited', 'yes')\nend\nreturn M\n")
    driver.find_element(By.ID, "script-save").click()
    wait.until(lambda d: "Saved" in text("#script-ok"))

    # explain: the same words as the command
    driver.find_element(By.ID, "nav-explain").click()
    wait.until(ec.visibility_of_element_located((By.ID, "explain-url")))
    driver.find_element(By.ID, "explain-url").send_keys(f"http://127.0.0.1:{proxy}/shop/item")
    driver.find_element(By.CSS_SELECTOR, "#explain-form button").click()
    wait.until(lambda d: "shop" in text("#explain-out") and "backend" in text("#explain-out"))
    with open(os.path.join(shots, "explain.txt"), "w") as f:
        f.write(text("#explain-out"))
    shot("admin-explain")

    # the reload history shows the writes
    driver.find_element(By.ID, "nav-reloads").click()
    wait.until(lambda d: "applied" in text("#reloads"))
    shot("admin-reloads")

    # the proxy serves the new route
    deadline = time.time() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/shop/x", timeout=5) as r:
                body = r.read().decode()
                if r.status == 200 and "/shop/x" in body:
                    break
        except Exception:
            pass
        if time.time() > deadline:
            raise SystemExit("the proxy does not serve /shop")
        time.sleep(0.1)
    print("ui ok")
finally:
    driver.quit()
