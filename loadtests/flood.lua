-- wrk script: a flood of 20-event batches for the site FLOOD_SITE, every request a fresh
-- session, never backing off whatever the answer: as fast as wrk can send, or FLOOD_RATE
-- requests per second over FLOOD_CONNECTIONS connections. Used by scenario.sh when FLOOD is
-- set; run wrk with one thread (-t1), so ids stay unique.
local site = os.getenv("FLOOD_SITE") or "flood"
local rate = tonumber(os.getenv("FLOOD_RATE") or "0")
local connections = tonumber(os.getenv("FLOOD_CONNECTIONS") or "64")
local n = 0

-- Each connection waits this long (ms) before each request, so all of them together send
-- about FLOOD_RATE requests per second.
if rate > 0 then
  local pause = connections * 1000 / rate
  delay = function()
    return pause
  end
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
wrk.headers["Origin"] = "http://127.0.0.1:8080"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
-- FLOOD_ADDRESS: the flood comes from this client address, as a proxy would say (for a
-- collector with limits.client_address_header = "x-forwarded-for").
if os.getenv("FLOOD_ADDRESS") then
  wrk.headers["X-Forwarded-For"] = os.getenv("FLOOD_ADDRESS")
end

request = function()
  n = n + 1
  local ts = os.time() * 1000
  local events = {}
  for i = 1, 20 do
    events[i] = string.format('{"id":"f%d-%d","type":"page_view","ts":%d,"session":"flood-%d"}', n, i, ts, n)
  end
  local body = string.format('{"site":"%s","events":[%s]}', site, table.concat(events, ","))
  return wrk.format(nil, nil, nil, body)
end
