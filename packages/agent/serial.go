package main

import "sync"

// serializer runs functions that share a key one at a time, in submission
// order, while functions with different keys (or no key) run concurrently.
// The agent uses it so that, e.g., two stdin writes to one process cannot be
// reordered, yet a blocked stdin write never delays unrelated requests.
type serializer struct {
	mu     sync.Mutex
	queues map[string][]func() // a key is present while a goroutine drains it
}

func (s *serializer) run(key string, fn func()) {
	if key == "" {
		go fn()
		return
	}
	s.mu.Lock()
	if s.queues == nil {
		s.queues = make(map[string][]func())
	}
	q, busy := s.queues[key]
	s.queues[key] = append(q, fn)
	s.mu.Unlock()
	if !busy {
		go s.drain(key)
	}
}

func (s *serializer) drain(key string) {
	for {
		s.mu.Lock()
		q := s.queues[key]
		if len(q) == 0 {
			delete(s.queues, key)
			s.mu.Unlock()
			return
		}
		fn := q[0]
		q[0] = nil
		s.queues[key] = q[1:]
		s.mu.Unlock()
		fn()
	}
}
