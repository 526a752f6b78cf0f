package devices

import "sync"

// IRQ is an interrupt line a device drives. Devices call SetLevel only when
// the level they compute changes. SetLevel may be called with the device's
// lock held (see Serial), so implementations must be quick, must not block
// for long (KVM_IRQ_LINE is a short ioctl) and must never call back into
// the device.
type IRQ interface {
	SetLevel(high bool) error
}

// NoIRQ is a line that goes nowhere: for tests and for running without an
// interrupt controller (the guest then polls).
type NoIRQ struct{}

// SetLevel does nothing.
func (NoIRQ) SetLevel(bool) error { return nil }

// IRQFunc adapts a function to IRQ, e.g.
// devices.IRQFunc(func(h bool) error { return vm.IRQLine(devices.SerialCOM1IRQ, h) }).
type IRQFunc func(high bool) error

// SetLevel calls f(high).
func (f IRQFunc) SetLevel(high bool) error { return f(high) }

// CountingIRQ records what a device does to its line. It is a test helper
// exported for other packages' tests. Safe for concurrent use; the zero
// value is a low line.
type CountingIRQ struct {
	mu        sync.Mutex // guards every field below
	level     bool       // the last level set (or attempted, if err != nil)
	calls     int        // every SetLevel call
	raises    int        // calls that moved the line low -> high
	lowers    int        // calls that moved the line high -> low
	redundant int        // calls that did not change the level
	err       error      // returned by SetLevel when non-nil
}

// SetLevel records the call. If an error was injected with FailWith it is
// returned and the level is left unchanged.
func (c *CountingIRQ) SetLevel(high bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.err != nil {
		return c.err
	}
	switch {
	case high == c.level:
		c.redundant++
	case high:
		c.raises++
	default:
		c.lowers++
	}
	c.level = high
	return nil
}

// FailWith makes later SetLevel calls fail with err (nil restores success).
func (c *CountingIRQ) FailWith(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// Level is the current line level.
func (c *CountingIRQ) Level() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.level
}

// Raises counts low->high transitions.
func (c *CountingIRQ) Raises() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raises
}

// Lowers counts high->low transitions.
func (c *CountingIRQ) Lowers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lowers
}

// Calls counts every SetLevel call, including failed and redundant ones.
func (c *CountingIRQ) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// Redundant counts successful calls that set the level it already had. A
// device that pushes only on change keeps this at zero.
func (c *CountingIRQ) Redundant() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.redundant
}
