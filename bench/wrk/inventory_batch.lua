-- (d) inventory batches of 100 distinct seeded SKUs (a random run of consecutive keys).
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
require "report"

request = function()
  local first = math.random(0, 9900)
  local items = {}
  for i = 0, 99 do
    items[#items + 1] = string.format(
      '{"seller_id":"A1SELLER0001","parent_asin":"B0PARENT0001","child_asin":"B0CHILD00001","seller_sku":"SKU%010d","market_place_id":"US","inventory":%d}',
      first + i, math.random(0, 100000))
  end
  return wrk.format("POST", "/api/v1/inventory/batch", headers, '{"items":[' .. table.concat(items, ",") .. ']}')
end

done = function(summary, latency, requests) report(summary, latency, 100) end
