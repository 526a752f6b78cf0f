package blk

import (
	"errors"
	"fmt"
	"time"

	"github.com/govmm/govmm/devices/virtio"
)

// ErrActivate: Activate was given an unusable context.
var ErrActivate = errors.New("virtio-blk: bad activation")

// Activate takes the request queue. Called by the transport at DRIVER_OK.
func (d *Disk) Activate(ctx virtio.ActivateContext) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return fmt.Errorf("disk %s: %w", d.path, ErrClosed)
	case ctx.Mem == nil || len(ctx.Queues) < 1 || ctx.Queues[0] == nil:
		return fmt.Errorf("%w: request queue 0 not enabled", ErrActivate)
	case ctx.Interrupt == nil || ctx.NeedsReset == nil:
		return fmt.Errorf("%w: missing callbacks", ErrActivate)
	}
	d.dropQueue()
	d.ctx = ctx
	d.q = ctx.Queues[0]
	d.features = ctx.Features
	d.active = true
	return nil
}

// Reset drops all queue state, including a throttled request (the driver
// resetting the device abandons its requests). The rate limiter keeps its
// balance: resetting must not be a way around the limit.
func (d *Disk) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropQueue()
}

func (d *Disk) dropQueue() {
	d.active, d.broken, d.pending = false, false, false
	d.ctx = virtio.ActivateContext{}
	d.q = nil
	d.features = 0
	d.clearScratch()
}

// clearScratch forgets every slice into guest RAM held between requests.
func (d *Disk) clearScratch() {
	clear(d.bufs[:cap(d.bufs)])
	clear(d.iov[:cap(d.iov)])
	d.descs, d.bufs, d.iov, d.dwz = d.descs[:0], d.bufs[:0], d.iov[:0], d.dwz[:0]
	d.req = request{}
}

// RetryAfter reports whether a request is being held back by the rate
// limiter and for how long: 0 means nothing is throttled, otherwise it is
// the time (at least 1 ns) until the held request may pass.
//
// Worker contract: after every Notify, a worker calls RetryAfter; if it is
// non-zero the worker arms a timer (a timerfd in its epoll set) for it and,
// when the timer fires, calls Notify(0) again. The device never drops a
// throttled request: it keeps the popped chain and resumes with it.
// While a request is held the device leaves guest kicks disabled, so the
// timer is what drives it.
func (d *Disk) RetryAfter() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.pending {
		return 0
	}
	w := d.retry.Sub(d.now())
	if w <= 0 {
		return 1
	}
	return w
}

func (d *Disk) now() time.Time {
	if d.clock != nil {
		return d.clock()
	}
	return time.Now()
}

// Notify processes the request queue until it is empty, a request is
// throttled, or the guest breaks the protocol. It ignores queues it does not
// own and kicks that arrive before Activate or after Reset.
func (d *Disk) Notify(qi int) {
	if qi != 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.active || d.broken || d.closed {
		return
	}
	d.process()
}

// process is the queue loop of the queue package's worker pattern: drain
// with notifications disabled, interrupt if the driver wants it, re-enable
// and re-check so a chain published meanwhile is not missed.
func (d *Disk) process() {
	q := d.q
	done := 0
	for {
		if err := q.DisableNotification(); err != nil {
			d.violation(err)
			break
		}
		stop := false
		for {
			if !d.pending {
				ok, err := d.next()
				if err != nil {
					d.violation(err)
					stop = true
					break
				}
				if !ok {
					break
				}
			}
			if d.limiter != nil {
				ok, wait := d.limiter.Take(d.req.cost())
				if !ok {
					if !d.pending {
						d.stats.throttled.Add(1)
					}
					d.pending = true
					d.retry = d.now().Add(wait)
					stop = true
					break
				}
			}
			d.pending = false
			if err := d.complete(); err != nil {
				d.violation(err)
				stop = true
				break
			}
			done++
		}
		if stop {
			break
		}
		if done > 0 {
			d.signal()
			done = 0
		}
		more, err := q.EnableNotification()
		if err != nil {
			d.violation(err)
			return
		}
		if !more {
			return
		}
	}
	if done > 0 && !d.broken {
		d.signal()
	}
}

// next pops the next chain into d.req. The chain is parsed as it is walked
// (the queue reuses it on the next Pop) and validated before anything else
// happens.
func (d *Disk) next() (bool, error) {
	c, ok, err := d.q.Pop()
	if err != nil || !ok {
		return false, err
	}
	p := reqParser{mem: d.ctx.Mem, data: d.descs[:0]}
	var last desc
	n := 0
	for {
		b, more, err := c.Next()
		if err != nil {
			d.descs = p.data[:0]
			return false, err
		}
		if !more {
			break
		}
		p.add(b)
		last = b
		n++
	}
	d.descs = p.data[:0] // keep the array for the next request
	r := &d.req
	*r = request{head: c.Head()}
	if err := p.finish(r, last, n); err != nil {
		*r = request{}
		return false, err
	}
	d.dwz = d.validate(d.ctx.Mem, r, d.dwz[:0])
	d.stats.countType(r.typ)
	return true, nil
}

// signal raises the used-buffer interrupt if the driver asked for it. A
// failing interrupt (the transport is being torn down) cannot be helped
// here; the transport reports its own failures.
func (d *Disk) signal() {
	if d.q.NeedsNotify() {
		_ = d.ctx.Interrupt()
	}
}

// violation stops the device after a guest protocol violation: the queue is
// not touched again until Reset, and the transport sets NEEDS_RESET.
func (d *Disk) violation(err error) {
	d.broken, d.pending = true, false
	d.stats.protocolErrors.Add(1)
	d.clearScratch()
	d.ctx.NeedsReset(err)
}

// complete performs the validated request in d.req, writes its status byte
// and returns the chain to the driver. It returns an error only for a
// protocol-level failure (guest memory gone, the queue broken).
func (d *Disk) complete() error {
	r := &d.req
	status, written := r.verdict, uint32(0)
	if status == StatusOK {
		status, written = d.execute(r)
	}
	switch status {
	case StatusIOErr:
		d.stats.ioErrors.Add(1)
		if r.hostFail {
			d.stats.hostIOErrors.Add(1)
		}
	case StatusUnsupp:
		d.stats.unsuppErrors.Add(1)
	}
	// The status goes in only now: for FLUSH, after fdatasync returned.
	if err := d.ctx.Mem.WriteU8(r.status, status); err != nil {
		return fmt.Errorf("%w: status byte: %w", ErrGuestMemoryGone, err)
	}
	err := d.q.PushUsed(r.head, written+1)
	clear(d.bufs)
	clear(d.iov)
	d.bufs, d.iov = d.bufs[:0], d.iov[:0]
	return err
}
