package main

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// maxErrorKinds bounds the distinct error descriptions a Recorder keeps; later kinds are
// counted under "other".
const maxErrorKinds = 20

// Outcome is how one request ended: an HTTP status, or Err when no response arrived (then
// Status is 0). Detail, when set, describes an unexpected status (e.g. the error body's code).
type Outcome struct {
	Status int
	Err    error
	Detail string
}

// Class is the report column an outcome counts in.
type Class int

// Outcome classes. Conflict (409) and Limited (429) are expected answers of a correct
// service under this load (a payment racing another one, a customer over its plan), so they
// are reported on their own and are not errors.
const (
	ClassOK       Class = iota // 2xx
	ClassConflict              // 409
	ClassLimited               // 429
	ClassError                 // any other status, or no response
)

// Classify sorts an outcome into its class.
func Classify(o Outcome) Class {
	switch {
	case o.Err != nil || o.Status == 0:
		return ClassError
	case o.Status >= 200 && o.Status < 300:
		return ClassOK
	case o.Status == http.StatusConflict:
		return ClassConflict
	case o.Status == http.StatusTooManyRequests:
		return ClassLimited
	default:
		return ClassError
	}
}

// errorKind returns a short description for the error tally.
func errorKind(o Outcome) string {
	switch {
	case errors.Is(o.Err, errNotSent):
		return "not sent before the drain deadline"
	case errors.Is(o.Err, context.Canceled), errors.Is(o.Err, context.DeadlineExceeded):
		return "no response before the deadline"
	case o.Err != nil:
		return o.Err.Error()
	case o.Detail != "":
		return http.StatusText(o.Status) + ": " + o.Detail
	default:
		return http.StatusText(o.Status)
	}
}

// RouteStats is what one route (or the total) recorded.
type RouteStats struct {
	Latency  Histogram
	Count    int64
	OK       int64
	Conflict int64
	Limited  int64
	Errors   int64
}

func (s *RouteStats) add(c Class, lat time.Duration) {
	s.Latency.Record(lat)
	s.Count++
	switch c {
	case ClassOK:
		s.OK++
	case ClassConflict:
		s.Conflict++
	case ClassLimited:
		s.Limited++
	default:
		s.Errors++
	}
}

func (s *RouteStats) merge(o *RouteStats) {
	s.Latency.Merge(&o.Latency)
	s.Count += o.Count
	s.OK += o.OK
	s.Conflict += o.Conflict
	s.Limited += o.Limited
	s.Errors += o.Errors
}

// Recorder collects measured outcomes per route. Its methods are safe for concurrent use.
type Recorder struct {
	mu         sync.Mutex
	routes     [numRoutes]RouteStats
	errorKinds map[string]int64
	lag        Histogram // open loop: how late each request was sent after its intended start
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{errorKinds: map[string]int64{}} }

// Record adds one measured request: its route, outcome and latency.
func (r *Recorder) Record(route Route, o Outcome, lat time.Duration) {
	c := Classify(o)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[route].add(c, lat)
	if c == ClassError {
		k := route.String() + ": " + errorKind(o)
		if _, ok := r.errorKinds[k]; !ok && len(r.errorKinds) >= maxErrorKinds {
			k = "other"
		}
		r.errorKinds[k]++
	}
}

// RecordLag adds how late a measured open-loop request was sent.
func (r *Recorder) RecordLag(d time.Duration) {
	r.mu.Lock()
	r.lag.Record(d)
	r.mu.Unlock()
}

// snapshot copies the recorder's state.
func (r *Recorder) snapshot() (routes [numRoutes]RouteStats, kinds map[string]int64, lag Histogram) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kinds = make(map[string]int64, len(r.errorKinds))
	for k, v := range r.errorKinds {
		kinds[k] = v
	}
	return r.routes, kinds, r.lag
}
