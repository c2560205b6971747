-- (g) single inventory upserts as (a), each with an Idempotency-Key of its own (a new key per
-- request: the key is read, claimed, and the response kept); with "replay" as the second
-- script argument, (h): every request repeats one of 64 keys per thread whose first answer is
-- kept, so after the first round every request is a replay (one read, nothing written).
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/wrk/?.lua"
require "report"

local sent = 0

local base_init = init
init = function(args)
  base_init(args)
  replay = args[2] == "replay"
  run = string.format("%d-%d", os.time(), thread_id or 0)
end

request = function()
  sent = sent + 1
  local key, sku, units
  if replay then
    local slot = sent % 64
    key, sku, units = string.format("bench-%s-r%d", run, slot), slot, slot
  else
    key, sku, units = string.format("bench-%s-%d", run, sent), math.random(0, 9999), math.random(0, 100000)
  end
  local body = string.format(
    '{"seller_id":"A1SELLER0001","parent_asin":"B0PARENT0001","child_asin":"B0CHILD00001","seller_sku":"SKU%010d","market_place_id":"US","inventory":%d}',
    sku, units)
  local keyed = { ["Idempotency-Key"] = key }
  for name, value in pairs(headers) do keyed[name] = value end
  return wrk.format("POST", "/api/v1/inventory", keyed, body)
end

done = function(summary, latency, requests) report(summary, latency, 1) end
