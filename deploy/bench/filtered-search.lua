-- wrk script: POST /search with embeddings, one filter case per run.
--
--   wrk -t2 -c8 -d30s --timeout 60s --latency -s filtered-search.lua URL -- VECTORS THREADS [FIELDS]
--
-- VECTORS has one JSON array (a unit vector of the model's dimension) per
-- line; requests cycle through them. FIELDS is JSON text added to every
-- body after its "k" and "images" (',"filters":{"g1":true}'). No text is encoded: the figures are the
-- index, the filter and the rows alone. Prints one JSON line: requests/s,
-- latency percentiles, and how many answers said "exhaustive": true and
-- false.

-- THREADS must equal wrk's -t (see wrk-threads.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk-threads.lua")

function init(args)
   local thread_count = tonumber(args[2] or "1")
   local fields = args[3] or ""
   bodies = {}
   for _, line in ipairs(thread_lines(args[1], thread_count)) do
      bodies[#bodies + 1] = '{"k":10,"images":[{"embedding":' .. line .. '}]' .. fields .. '}'
   end
   next_body = 0
   errors, exhaustive, partial = 0, 0, 0
   headers = { ["Content-Type"] = "application/json" }
end

function request()
   next_body = next_body % #bodies + 1
   return wrk.format("POST", "/search", headers, bodies[next_body])
end

function response(status, hdrs, body)
   if status ~= 200 then
      errors = errors + 1
   elseif body:find('"exhaustive":%s*true') then
      exhaustive = exhaustive + 1
   elseif body:find('"exhaustive":%s*false') then
      partial = partial + 1
   end
end

function done(summary, latency, requests)
   local errs, ex, part = total("errors"), total("exhaustive"), total("partial")
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"seconds":%.2f,"requests_per_s":%.1f,' ..
      '"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,"exhaustive":%d,"not_exhaustive":%d,' ..
      '"non_200":%d,"socket_errors":%d}\n',
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
      latency.max / 1e3, ex, part, errs, e.connect + e.read + e.write + e.timeout))
end
