-- wrk script: 1-record pushes, every one with a key of its own, so the rows committed can be
-- counted against the 2xx answers. Run as: wrk -s push_one.lua URL -- TABLE (token in BENCH_TOKEN).
-- TABLE may name several tables, comma-separated: the requests take them in turn.
-- done() prints one line, BENCH_JSON {...}, in the shape bench/loadgen.py prints it.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  tables = {}
  for name in string.gmatch(args[1], "[^,]+") do
    table.insert(tables, name)
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
end

function request()
  counter = counter + 1
  local table_name = tables[counter % #tables + 1]
  local body = string.format(
    '[{"client_id":7723,"table_name":"%s","sequence":%d,"action":"upsert",' ..
    '"key_names":["id"],"data":{"id":"%d-%d","v":%d}}]',
    table_name, counter, thread_id, counter, counter)
  return wrk.format(nil, "/v2/import/push", nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"acknowledged":%d,"failed":%d,"seconds":%f,' ..
    '"p50":%f,"p99":%f}\n',
    summary.requests, summary.requests - e.status,
    e.status + e.connect + e.read + e.write + e.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e6, latency:percentile(99) / 1e6))
end
