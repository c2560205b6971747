-- (e)/(f) reserve-then-release pairs: each connection reserves 1 unit of a random SKU, and the
-- next free connection of the same thread releases a reservation that came back. Every request
-- is one stock operation. The second script argument is how many SKUs to draw from: 10,000
-- (e), or 10 hot SKUs (f).
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
require "report"

local held = {}

local base_init = init
init = function(args)
  base_init(args)
  skus = tonumber(args[2] or "10000")
end

request = function()
  local id = table.remove(held)
  if id then
    return wrk.format("DELETE", "/api/v1/reservations/" .. id, headers)
  end
  local body = string.format(
    '{"seller_id":"A1SELLER0001","market_place_id":"US","reservation_type":"cart","reference_id":"bench","items":[{"seller_sku":"SKU%010d","quantity":1}]}',
    math.random(0, skus - 1))
  return wrk.format("POST", "/api/v1/reservations", headers, body)
end

response = function(status, headers, body)
  if status == 201 then
    local id = string.match(body, '"id":(%d+)')
    if id then table.insert(held, id) end
  end
end

done = function(summary, latency, requests) report(summary, latency, 1) end
