package proxy

import (
	"time"

	"github.com/shardwire/shardwire/router"
)

// pendingKind is the client message a reply in the queue answers.
type pendingKind uint8

const (
	pendParse    pendingKind = iota // ParseComplete
	pendBind                        // BindComplete
	pendDescribe                    // [ParameterDescription] RowDescription | NoData
	pendExecute                     // rows then CommandComplete | EmptyQueryResponse | PortalSuspended
	pendClose                       // CloseComplete
	pendSync                        // ReadyForQuery
	pendQuery                       // a simple Query or FunctionCall: everything up to ReadyForQuery
)

// pendingAction is what the relay does with the reply when it arrives.
type pendingAction uint8

const (
	actForward pendingAction = iota // send the backend's reply to the client
	actSwallow                      // the proxy injected the message: drop the reply
	actSynth                        // the proxy answers it: emit synth when its turn comes
)

// pending is one expected reply, in the order the backend sends them.
type pending struct {
	kind   pendingKind
	action pendingAction
	// synth is the frame to emit for actSynth; nil with pendSync means ReadyForQuery carrying
	// the transaction status at that point of the stream.
	synth []byte
	// stmt and clientName identify a forwarded Parse, forgotten again if it fails.
	stmt       *statement
	clientName string
	// effects are the session effects of an Execute or Query; nil for none.
	effects *router.SessionEffects
	// start is when a request (Sync or Query) began, for latency.
	start time.Time
}

// queue is a FIFO of pending replies that reuses its backing array.
type queue struct {
	items []pending
	head  int
	// syncs counts queued requests the backend will end with ReadyForQuery (forwarded Sync,
	// Query and FunctionCall); popped counts entries taken off so far.
	syncs  int
	popped uint64
}

func (q *queue) len() int { return len(q.items) - q.head }

// pushed returns how many entries were ever queued: the position of the next one.
func (q *queue) pushed() uint64 { return q.popped + uint64(q.len()) }

func isRequestEnd(p *pending) bool {
	return (p.kind == pendSync || p.kind == pendQuery) && p.action != actSynth
}

func (q *queue) push(p pending) {
	if isRequestEnd(&p) {
		q.syncs++
	}
	q.items = append(q.items, p)
}

func (q *queue) peek() *pending {
	if q.head == len(q.items) {
		return nil
	}
	return &q.items[q.head]
}

func (q *queue) pop() pending {
	p := q.items[q.head]
	if isRequestEnd(&p) {
		q.syncs--
	}
	q.popped++
	q.items[q.head] = pending{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return p
}

func (q *queue) last() *pending {
	if q.head == len(q.items) {
		return nil
	}
	return &q.items[len(q.items)-1]
}

func (q *queue) reset() {
	q.popped += uint64(q.len())
	clear(q.items)
	q.items, q.head, q.syncs = q.items[:0], 0, 0
}

// Frames the proxy synthesizes.
var (
	parseCompleteFrame = []byte{'1', 0, 0, 0, 4}
	closeCompleteFrame = []byte{'3', 0, 0, 0, 4}
	bindCompleteFrame  = []byte{'2', 0, 0, 0, 4}
	noDataFrame        = []byte{'n', 0, 0, 0, 4}
)

func readyForQueryFrame(status byte) []byte { return []byte{'Z', 0, 0, 0, 5, status} }

func commandCompleteFrame(tag string) []byte {
	f := []byte{'C', 0, 0, 0, 0}
	f = append(f, tag...)
	f = append(f, 0)
	n := len(f) - 1
	f[1], f[2], f[3], f[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return f
}
