package blk

import "sync/atomic"

// Stats is a snapshot of a Disk's counters. Each field is read atomically,
// but the snapshot as a whole is not: a request completing meanwhile may be
// counted in one field and not yet in another.
type Stats struct {
	// Requests by type (every popped request is counted once, under its
	// header type, whatever its outcome; a retried throttled request is
	// counted once).
	Reads, Writes, Flushes, GetIDs, Discards, WriteZeroes, OtherTypes uint64

	// Bytes moved between the file and guest RAM by successful reads and
	// writes.
	BytesRead, BytesWritten uint64

	// Errors by kind: requests answered IOERR (bad range, length, direction,
	// read-only, or a host I/O error) or UNSUPP, and guest protocol
	// violations that put the device in NEEDS_RESET.
	IOErrors, UnsuppErrors, ProtocolErrors uint64

	// HostIOErrors counts IOERR answers caused by the host (a failed
	// syscall, a file that shrank), a subset of IOErrors worth alerting on.
	HostIOErrors uint64

	// Throttled counts the times the rate limiter held a request back.
	Throttled uint64
}

// counters are written only by the request path, which runs under Disk.mu,
// and read by Stats from any goroutine.
type counters struct {
	reads, writes, flushes, getIDs, discards, writeZeroes, otherTypes counter
	bytesRead, bytesWritten                                           counter
	ioErrors, unsuppErrors, protocolErrors, hostIOErrors              counter
	throttled                                                         counter
}

// counter is a uint64 with one writer at a time (the holder of Disk.mu) and
// any number of readers. The writer adds with an atomic load and store
// rather than an atomic add: readers still never see a torn value, and on
// amd64 both are plain moves, where an add is a LOCK XADD that costs more
// than the rest of the bookkeeping of a request.
type counter struct{ v atomic.Uint64 }

func (c *counter) add(n uint64) { c.v.Store(c.v.Load() + n) }
func (c *counter) load() uint64 { return c.v.Load() }

func (c *counters) countType(t uint32) {
	switch t {
	case TypeIn:
		c.reads.add(1)
	case TypeOut:
		c.writes.add(1)
	case TypeFlush:
		c.flushes.add(1)
	case TypeGetID:
		c.getIDs.add(1)
	case TypeDiscard:
		c.discards.add(1)
	case TypeWriteZeroes:
		c.writeZeroes.add(1)
	default:
		c.otherTypes.add(1)
	}
}

// Stats returns a snapshot of the counters. Safe from any goroutine.
func (d *Disk) Stats() Stats {
	c := &d.stats
	return Stats{
		Reads: c.reads.load(), Writes: c.writes.load(), Flushes: c.flushes.load(),
		GetIDs: c.getIDs.load(), Discards: c.discards.load(), WriteZeroes: c.writeZeroes.load(),
		OtherTypes: c.otherTypes.load(),
		BytesRead:  c.bytesRead.load(), BytesWritten: c.bytesWritten.load(),
		IOErrors: c.ioErrors.load(), UnsuppErrors: c.unsuppErrors.load(),
		ProtocolErrors: c.protocolErrors.load(), HostIOErrors: c.hostIOErrors.load(),
		Throttled: c.throttled.load(),
	}
}
