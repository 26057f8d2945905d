-- wrk script: text search with distinct queries (no cache hits).
--
--   wrk -t2 -c8 -d30s --latency -s search.lua http://127.0.0.1:8080 -- QUERIES THREADS [KEY]
--
-- QUERIES has one query per line (deploy/bench/run.sh writes 10,000).
-- Thread i sends queries i, i+T, i+2T, ... so no two requests of the run
-- repeat a query until every query was sent once: with more queries than
-- the server's text cache holds, every search encodes its text.
-- Prints one JSON line at the end.

-- THREADS must equal wrk's -t (see wrk-threads.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk-threads.lua")

local function urlencode(s)
   return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
   local thread_count = tonumber(args[2] or "1")
   local path = args[1] or "queries.txt"
   queries = {}
   for _, line in ipairs(thread_lines(path, thread_count)) do queries[#queries + 1] = urlencode(line) end
   next_query = 0
   errors = 0
   headers = {}
   if args[3] then headers["Authorization"] = "Bearer " .. args[3] end
end

function request()
   next_query = next_query % #queries + 1
   return wrk.format("GET", "/search?k=10&q=" .. queries[next_query], headers)
end

function response(status, hdrs, body)
   if status ~= 200 then errors = errors + 1 end
end

function done(summary, latency, requests)
   local errs = total("errors")
   local e = summary.errors
   io.write(string.format(
      '{"bench":"search","requests":%d,"seconds":%.2f,"requests_per_s":%.1f,"p50_ms":%.2f,"p90_ms":%.2f,' ..
      '"p99_ms":%.2f,"max_ms":%.2f,"non_200":%d,"socket_errors":%d}\n',
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
      latency.max / 1e3, errs, e.connect + e.read + e.write + e.timeout))
end
