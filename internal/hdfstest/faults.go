package hdfstest

import (
	"context"
	"sync"
	"time"
)

// Action is what an armed Fault does to a call it matches.
type Action int

const (
	// Fail answers the call with Fault.Exception instead of running it.
	// On a DataNode operation the client gets an ERROR BlockOpResponse.
	Fail Action = iota + 1
	// FailAfter runs the call, then answers with Fault.Exception: the
	// change is made but the client never hears of it (a lost response).
	FailAfter
	// Hang blocks the call until Armed.Release, the client disconnects, or
	// the Server closes. Clients only give up with their own deadlines.
	Hang
	// Delay sleeps Fault.Delay before running the call.
	Delay
	// Drop cuts a DataNode connection once Fault.AfterBytes bytes of block
	// data have gone through it (OpWriteBlock or OpReadBlock only).
	Drop
	// RefuseComplete makes complete answer false (as while replication is
	// pending) without closing the file. The block the client names is
	// still committed, as in HDFS.
	RefuseComplete
)

// DataNode operation names a Fault can match, next to NameNode method names.
const (
	OpWriteBlock = "dn.writeBlock"
	OpReadBlock  = "dn.readBlock"
)

// Fault describes one injected failure. Examples:
//
//	s.Faults().Add(hdfstest.Fault{Op: "complete", Nth: 1, Action: hdfstest.Fail,
//		Exception: hdfstest.ExcRetriable})
//	s.Faults().Add(hdfstest.Fault{Op: hdfstest.OpWriteBlock, Nth: 2, Action: hdfstest.Drop,
//		AfterBytes: 100 << 10})
//
// Server has shorthands for the common cases (FailCall, HangCall, SlowCalls,
// DropWrite, DropRead, RefuseComplete).
type Fault struct {
	// Op is a ClientNamenodeProtocol method name ("complete", "addBlock",
	// "create", ...) or OpWriteBlock / OpReadBlock. Empty matches every
	// NameNode call and DataNode operation.
	Op string
	// Nth picks the matching call counted from when the fault was added:
	// 1 is the first. 0 means every matching call.
	Nth int
	// Action is what happens to the picked call.
	Action Action
	// Exception is the Java exception class for Fail and FailAfter
	// (default java.io.IOException); Message its message.
	Exception, Message string
	// Delay is the sleep for Delay.
	Delay time.Duration
	// AfterBytes is the block data let through before Drop cuts the
	// connection.
	AfterBytes int64
}

// Armed is a Fault in force. Its methods are safe for concurrent use.
type Armed struct {
	f       Fault
	owner   *Faults
	seen    int
	fired   int
	release chan struct{}
	once    sync.Once
}

// Fired returns how many calls the fault has acted on so far.
func (a *Armed) Fired() int {
	a.owner.mu.Lock()
	defer a.owner.mu.Unlock()
	return a.fired
}

// Release ends the calls a Hang fault is holding, and lets later ones pass.
func (a *Armed) Release() { a.once.Do(func() { close(a.release) }) }

// Remove disarms the fault (and releases what it holds).
func (a *Armed) Remove() {
	a.Release()
	a.owner.mu.Lock()
	defer a.owner.mu.Unlock()
	for i, x := range a.owner.armed {
		if x == a {
			a.owner.armed = append(a.owner.armed[:i], a.owner.armed[i+1:]...)
			return
		}
	}
}

// Faults is the set of armed faults of a Server.
type Faults struct {
	mu    sync.Mutex
	armed []*Armed
}

// Add arms f and returns its handle.
func (fs *Faults) Add(f Fault) *Armed {
	if f.Exception == "" {
		f.Exception = ExcIO
	}
	a := &Armed{f: f, owner: fs, release: make(chan struct{})}
	fs.mu.Lock()
	fs.armed = append(fs.armed, a)
	fs.mu.Unlock()
	return a
}

// Clear disarms every fault.
func (fs *Faults) Clear() {
	fs.mu.Lock()
	armed := fs.armed
	fs.armed = nil
	fs.mu.Unlock()
	for _, a := range armed {
		a.Release()
	}
}

// pick counts op against the faults with one of the given actions and
// returns those that fire.
func (fs *Faults) pick(op string, actions ...Action) []*Armed {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []*Armed
	for _, a := range fs.armed {
		if a.f.Op != "" && a.f.Op != op {
			continue
		}
		match := false
		for _, act := range actions {
			match = match || a.f.Action == act
		}
		if !match {
			continue
		}
		a.seen++
		if a.f.Nth == 0 || a.seen == a.f.Nth {
			a.fired++
			out = append(out, a)
		}
	}
	return out
}

// effect is what the faults leave for the call to do itself.
type effect struct {
	failAfter error
	dropAfter int64 // < 0: no drop
}

// before applies the faults that act before a call runs: delays, hangs and
// failures. It returns the remote error for Fail, or ctx's error when the
// call was hanging and the client or server went away.
func (fs *Faults) before(ctx context.Context, op string) (effect, error) {
	eff := effect{dropAfter: -1}
	for _, a := range fs.pick(op, Fail, FailAfter, Hang, Delay, Drop) {
		switch a.f.Action {
		case Delay:
			t := time.NewTimer(a.f.Delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return eff, ctx.Err()
			}
		case Hang:
			select {
			case <-a.release:
			case <-ctx.Done():
				return eff, ctx.Err()
			}
		case Fail:
			return eff, &remoteError{class: a.f.Exception, msg: "hdfstest: injected fault on " + op + ": " + a.f.Message}
		case FailAfter:
			eff.failAfter = &remoteError{class: a.f.Exception, msg: "hdfstest: injected fault after " + op + ": " + a.f.Message}
		case Drop:
			eff.dropAfter = a.f.AfterBytes
		}
	}
	return eff, nil
}

// refuseComplete reports whether this complete call must answer false.
func (fs *Faults) refuseComplete() bool {
	return len(fs.pick("complete", RefuseComplete)) > 0
}

// Faults returns the server's fault injector.
func (s *Server) Faults() *Faults { return s.faults }

// FailCall makes the nth call (0 = every call) of the NameNode method fail
// with the Java exception class, e.g.
// s.FailCall("complete", 1, hdfstest.ExcRetriable).
func (s *Server) FailCall(method string, nth int, exception string) *Armed {
	return s.faults.Add(Fault{Op: method, Nth: nth, Action: Fail, Exception: exception})
}

// HangCall blocks the nth call of method until the returned fault is
// released, the client disconnects or the server closes.
func (s *Server) HangCall(method string, nth int) *Armed {
	return s.faults.Add(Fault{Op: method, Nth: nth, Action: Hang})
}

// SlowCalls delays every NameNode call and DataNode operation by d.
func (s *Server) SlowCalls(d time.Duration) *Armed {
	return s.faults.Add(Fault{Action: Delay, Delay: d})
}

// DropWrite cuts the nth block write connection after afterBytes bytes of
// block data.
func (s *Server) DropWrite(nth int, afterBytes int64) *Armed {
	return s.faults.Add(Fault{Op: OpWriteBlock, Nth: nth, Action: Drop, AfterBytes: afterBytes})
}

// DropRead cuts the nth block read connection after afterBytes bytes of
// block data.
func (s *Server) DropRead(nth int, afterBytes int64) *Armed {
	return s.faults.Add(Fault{Op: OpReadBlock, Nth: nth, Action: Drop, AfterBytes: afterBytes})
}

// RefuseComplete makes the nth complete call (0 = every one) answer false,
// leaving the file under construction.
func (s *Server) RefuseComplete(nth int) *Armed {
	return s.faults.Add(Fault{Op: "complete", Nth: nth, Action: RefuseComplete})
}
