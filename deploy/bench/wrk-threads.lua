-- What the wrk scripts here share, loaded by each from its own folder:
--
--   dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "wrk-threads.lua")
--
-- Each thread gets an id (0, 1, ...) before its init(), so that thread i
-- of T can take lines i, i+T, i+2T, ... of an input (thread_lines), and
-- done() can add up a counter over the threads (total).
local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

-- The non-empty lines of path that this thread takes, of count threads
-- (count must equal wrk's -t: each thread's init() runs before the next
-- thread exists, so the scripts are given it).
function thread_lines(path, count)
   local out, i = {}, 0
   for line in io.lines(path) do
      if #line > 0 then
         if i % count == id then out[#out + 1] = line end
         i = i + 1
      end
   end
   return out
end

-- In done(): the sum of a counter over the threads.
function total(name)
   local n = 0
   for _, t in ipairs(threads) do n = n + (t:get(name) or 0) end
   return n
end
