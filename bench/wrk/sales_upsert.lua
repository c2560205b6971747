-- (b) single sales-target upserts on random keys (1,000 parent ASINs x 12 months).
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
require "report"

request = function()
  local body = string.format(
    '{"seller_id":"A1SELLER0001","parent_asin":"B0PAR%07d","market_place_id":"US","period":"2026-%02d","sales_target":%d.%02d}',
    math.random(0, 999), math.random(1, 12), math.random(1, 1000000), math.random(0, 99))
  return wrk.format("POST", "/api/v1/sales/target", headers, body)
end

done = function(summary, latency, requests) report(summary, latency, 1) end
