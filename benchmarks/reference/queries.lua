-- wrk script: GET requests whose query strings are drawn at random from a file of paths
-- (one "/predict?..." line each, made by bench_serving.py from real feature rows), and a
-- JSON summary line (prefixed "WRKJSON ") with latency percentiles in microseconds.
-- Usage: wrk -t1 -c10 -d10s --latency -s queries.lua http://127.0.0.1:PORT -- PATHS_FILE

local requests = {}
local count = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    if #line > 0 then
      count = count + 1
      requests[count] = wrk.format("GET", line)
    end
  end
  file:close()
  math.randomseed(os.time() + count)
end

function request()
  return requests[math.random(count)]
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d,' ..
    '"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max, latency:percentile(50), latency:percentile(75),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
