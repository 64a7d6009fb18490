-- Baseline (b): each request a new callback: a unique inbox key and the next pending item.
-- Threads take disjoint ranges of items, and each round (the script's argument, 0, 1, …)
-- ranges of its own, so every insert is new and every conditional update finds its item
-- pending: 10,000 items a thread (2,500 req/s for 4 s), 4 threads a round at most.
-- bench/baseline_app.py seeds enough items for 25 rounds.
local threads = {}
local counter = 0
local first_item

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  first_item = 1 + tonumber(args[1]) * 40000 + index * 10000
end

function request()
  local item = first_item + counter
  counter = counter + 1
  local body = "key=bench:" .. item .. "&item=" .. item
  return wrk.format("POST", "/callback", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
