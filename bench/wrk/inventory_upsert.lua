-- (a) single inventory upserts, seller_sku drawn at random from the 10,000 seeded keys.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
require "report"

request = function()
  local body = string.format(
    '{"seller_id":"A1SELLER0001","parent_asin":"B0PARENT0001","child_asin":"B0CHILD00001","seller_sku":"SKU%010d","market_place_id":"US","inventory":%d}',
    math.random(0, 9999), math.random(0, 100000))
  return wrk.format("POST", "/api/v1/inventory", headers, body)
end

done = function(summary, latency, requests) report(summary, latency, 1) end
