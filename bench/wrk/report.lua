-- Shared by every scenario: one RESULT line in JSON when wrk finishes.
function report(summary, latency, rows_per_request)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.2f,"req_per_s":%.1f,"rows_per_s":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"non_2xx":%d,"socket_errors":%d}\n',
    summary.requests, seconds, summary.requests / seconds, summary.requests * rows_per_request / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end

-- Each wrk thread gets its own random sequence.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

function init(args)
  token = args[1]
  math.randomseed(os.time() * 1000 + (thread_id or 0))
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
end
