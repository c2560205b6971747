-- (c) GET by id of the seeded inventory rows (ids 1..10000 on a fresh database).
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
require "report"

request = function()
  return wrk.format("GET", "/api/v1/inventory/" .. math.random(1, 10000), headers)
end

done = function(summary, latency, requests) report(summary, latency, 1) end
