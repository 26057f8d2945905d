-- wrk script: uploads of distinct images (never a duplicate).
--
--   wrk -t2 -c8 -d60s --latency -s upload.lua http://127.0.0.1:8080 -- MANIFEST THREADS [KEY]
--
-- MANIFEST lists image files, one path per line; thread i posts files i,
-- i+T, i+2T, ... each once, then stops, so every request carries bytes the
-- server has never seen. Prints one JSON line (images_per_s counts 201s).

-- THREADS must equal wrk's -t (see wrk-threads.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk-threads.lua")

local function slurp(path)
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   return data
end

function init(args)
   local thread_count = tonumber(args[2] or "1")
   local manifest = args[1] or "manifest.txt"
   files = thread_lines(manifest, thread_count)
   next_file = 0
   created, other, sent = 0, 0, 0
   headers = { ["Content-Type"] = "image/jpeg" }
   if args[3] then headers["Authorization"] = "Bearer " .. args[3] end
end

function request()
   next_file = next_file + 1
   if next_file > #files then
      -- Out of fresh images: stop this thread (requests already in flight finish).
      wrk.thread:stop()
      next_file = #files
   end
   sent = sent + 1
   return wrk.format("POST", "/images", headers, slurp(files[next_file]))
end

function response(status, hdrs, body)
   if status == 201 then created = created + 1 else other = other + 1 end
end

function done(summary, latency, requests)
   local c, o = total("created"), total("other")
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      '{"bench":"upload","requests":%d,"created":%d,"not_201":%d,"seconds":%.2f,"images_per_s":%.2f,' ..
      '"p50_ms":%.1f,"p99_ms":%.1f,"socket_errors":%d}\n',
      summary.requests, c, o, secs, c / secs, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
      e.connect + e.read + e.write + e.timeout))
end
