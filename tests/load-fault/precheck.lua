-- wrk script for scripts/load-fault: prechecks spread over 16 users with a purchase amount
-- each (so budgets run out under load) and a unique corr_id (so every event is distinct).
-- Counts 5xx answers per thread; done() prints their sum.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  fivexx = 0
  allowed = 0
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"tool":"t","scope":"net.external","raw_text":"order for bob@example.com, ssn 123-45-6789",'
      .. '"user_id":"load-%d","corr_id":"c-%d-%d","tool_config":{"metadata":{"purchase_amount":0.05}}}',
    counter % 16, tid, counter)
  return wrk.format("POST", "/api/v1/precheck", { ["content-type"] = "application/json" }, body)
end

function response(status, headers, body)
  if status >= 500 then
    fivexx = fivexx + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("fivexx")
  end
  io.write(string.format("wrk: requests %d, 5xx %d, p50 %.2f ms, p99 %.2f ms\n", summary.requests, total,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
