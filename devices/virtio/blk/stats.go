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

type counters struct {
	reads, writes, flushes, getIDs, discards, writeZeroes, otherTypes atomic.Uint64
	bytesRead, bytesWritten                                           atomic.Uint64
	ioErrors, unsuppErrors, protocolErrors, hostIOErrors              atomic.Uint64
	throttled                                                         atomic.Uint64
}

func (c *counters) countType(t uint32) {
	switch t {
	case TypeIn:
		c.reads.Add(1)
	case TypeOut:
		c.writes.Add(1)
	case TypeFlush:
		c.flushes.Add(1)
	case TypeGetID:
		c.getIDs.Add(1)
	case TypeDiscard:
		c.discards.Add(1)
	case TypeWriteZeroes:
		c.writeZeroes.Add(1)
	default:
		c.otherTypes.Add(1)
	}
}

// Stats returns a snapshot of the counters. Safe from any goroutine.
func (d *Disk) Stats() Stats {
	c := &d.stats
	return Stats{
		Reads: c.reads.Load(), Writes: c.writes.Load(), Flushes: c.flushes.Load(),
		GetIDs: c.getIDs.Load(), Discards: c.discards.Load(), WriteZeroes: c.writeZeroes.Load(),
		OtherTypes: c.otherTypes.Load(),
		BytesRead:  c.bytesRead.Load(), BytesWritten: c.bytesWritten.Load(),
		IOErrors: c.ioErrors.Load(), UnsuppErrors: c.unsuppErrors.Load(),
		ProtocolErrors: c.protocolErrors.Load(), HostIOErrors: c.hostIOErrors.Load(),
		Throttled: c.throttled.Load(),
	}
}
