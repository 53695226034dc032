// Command peer is the Go ttrpc (v1.1.1) interop peer used by the Rust
// transport tests.
//
//	peer server -socket PATH [-same-user]
//	peer client -socket PATH -case NAME [-size N] [-n N]
//
// Both modes speak the service "ttrpc.interop.Interop" described in
// README.md. Build with:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o peer .
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
	"github.com/gogo/protobuf/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	serviceName = "ttrpc.interop.Interop"
	// maxMessage is ttrpc's frame data limit (4 MiB, inclusive).
	maxMessage = 4 << 20
	// maxLarge caps the size a Large call may ask for.
	maxLarge = 64 << 20
	// callBound is how long a client case waits for a call that has no
	// deadline of its own. It is enforced by cancelling the context, so
	// no timeout_nano goes on the wire.
	callBound = 20 * time.Second
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "server":
		os.Exit(serverMain(os.Args[2:]))
	case "client":
		os.Exit(clientMain(os.Args[2:]))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: peer server -socket PATH [-same-user]")
	fmt.Fprintln(os.Stderr, "       peer client -socket PATH -case NAME [-size N] [-n N]")
	os.Exit(2)
}

// pattern returns n bytes where byte i is i%251.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// ---------------------------------------------------------------- server

// releaser wakes every blocked Block call when Release is called.
type releaser struct {
	mu sync.Mutex
	ch chan struct{}
}

func (r *releaser) wait() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ch
}

func (r *releaser) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.ch)
	r.ch = make(chan struct{})
}

func interopMethods() map[string]ttrpc.Method {
	rel := &releaser{ch: make(chan struct{})}
	return map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.BytesValue
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &req, nil
		},
		"Metadata": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			md, ok := ttrpc.GetMetadata(ctx)
			if !ok || md == nil {
				md = ttrpc.MD{}
			}
			out, err := json.Marshal(map[string][]string(md))
			if err != nil {
				return nil, status.Errorf(codes.Internal, "marshal metadata: %v", err)
			}
			return &types.StringValue{Value: string(out)}, nil
		},
		"Status": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.StringValue
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			parts := strings.SplitN(req.Value, ":", 2)
			code, err := strconv.ParseUint(parts[0], 10, 32)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "bad status request %q", req.Value)
			}
			msg := ""
			if len(parts) == 2 {
				msg = parts[1]
			}
			if code == 0 {
				return &types.StringValue{}, nil
			}
			return nil, status.Error(codes.Code(code), msg)
		},
		"Deadline": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			remaining := int64(-1)
			if dl, ok := ctx.Deadline(); ok {
				remaining = time.Until(dl).Nanoseconds()
			}
			return &types.Int64Value{Value: remaining}, nil
		},
		"Sleep": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.Int64Value
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			if req.Value > 0 {
				time.Sleep(time.Duration(req.Value) * time.Millisecond)
			}
			return &req, nil
		},
		"Block": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-rel.wait():
				return &types.Empty{}, nil
			}
		},
		"Release": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			rel.release()
			return &types.Empty{}, nil
		},
		"Large": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.Int64Value
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			if req.Value < 0 || req.Value > maxLarge {
				return nil, status.Errorf(codes.InvalidArgument, "Large: size %d out of range 0..=%d", req.Value, maxLarge)
			}
			return &types.BytesValue{Value: pattern(int(req.Value))}, nil
		},
	}
}

func serverMain(args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	socket := fs.String("socket", "", "unix socket path to listen on")
	sameUser := fs.Bool("same-user", false, "require SO_PEERCRED uid/gid to match ours")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "peer server: -socket is required")
		return 2
	}

	var opts []ttrpc.ServerOpt
	if *sameUser {
		opts = append(opts, ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()))
	}
	srv, err := ttrpc.NewServer(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer server: %v\n", err)
		return 1
	}
	srv.Register(serviceName, interopMethods())

	if err := os.Remove(*socket); err != nil && !os.IsNotExist(err) {
		fmt.Fprintf(os.Stderr, "peer server: remove stale socket: %v\n", err)
		return 1
	}
	l, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer server: listen: %v\n", err)
		return 1
	}

	done := make(chan string, 3)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { done <- fmt.Sprintf("signal %v", <-sigs) }()
	go func() {
		// A parent that dies closes our stdin: follow it.
		_, _ = io.Copy(io.Discard, os.Stdin)
		done <- "stdin closed"
	}()
	go func() {
		err := srv.Serve(context.Background(), l)
		done <- fmt.Sprintf("serve returned: %v", err)
	}()

	fmt.Fprintln(os.Stdout, "READY")

	why := <-done
	fmt.Fprintf(os.Stderr, "peer server: exiting (%s)\n", why)
	_ = srv.Close()
	_ = os.Remove(*socket)
	return 0
}

// ---------------------------------------------------------------- client

type result map[string]interface{}

// errResult describes err as {"ok":false,"error":...}, adding "code" and
// "message" when err carries a gRPC status.
func errResult(err error) result {
	r := result{"ok": false, "error": err.Error()}
	addStatus(r, err)
	return r
}

func addStatus(r result, err error) {
	if st, ok := status.FromError(err); ok && st != nil {
		r["code"] = int(st.Code())
		r["message"] = st.Message()
	}
}

// bounded returns a context without a deadline (so no timeout_nano is
// sent) that is cancelled after d anyway, so that no case hangs forever.
func bounded(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t := time.AfterFunc(d, cancel)
	return ctx, func() { t.Stop(); cancel() }
}

// frameSniffer records the data length of every frame written on a conn.
type frameSniffer struct {
	net.Conn
	mu     sync.Mutex
	hdr    []byte
	remain uint64
	sent   []uint32
}

// Write records the frames in p before writing them: a fast server may
// answer a frame before the Write of its last bytes returns, and the case
// reading lengths() must already see it then.
func (f *frameSniffer) Write(p []byte) (int, error) {
	f.record(p)
	return f.Conn.Write(p)
}

func (f *frameSniffer) record(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := p
	for len(b) > 0 {
		if f.remain > 0 {
			k := uint64(len(b))
			if k > f.remain {
				k = f.remain
			}
			f.remain -= k
			b = b[k:]
			continue
		}
		need := 10 - len(f.hdr)
		if need > len(b) {
			need = len(b)
		}
		f.hdr = append(f.hdr, b[:need]...)
		b = b[need:]
		if len(f.hdr) == 10 {
			l := binary.BigEndian.Uint32(f.hdr[:4])
			f.sent = append(f.sent, l)
			f.remain = uint64(l)
			f.hdr = f.hdr[:0]
		}
	}
}

func (f *frameSniffer) lengths() []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint32(nil), f.sent...)
}

func echo(ctx context.Context, c *ttrpc.Client, data []byte) result {
	var resp types.BytesValue
	if err := c.Call(ctx, serviceName, "Echo", &types.BytesValue{Value: data}, &resp); err != nil {
		return errResult(err)
	}
	return result{"ok": true, "len": len(resp.Value), "match": string(resp.Value) == string(data)}
}

func clientMain(args []string) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	socket := fs.String("socket", "", "unix socket path to dial")
	caseName := fs.String("case", "", "case to run")
	size := fs.Int("size", 16, "payload size for the echo case")
	n := fs.Int("n", 8, "goroutines for the concurrent case")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		emit(result{"ok": false, "error": "usage: " + err.Error()})
		return 2
	}
	if *socket == "" || *caseName == "" {
		emit(result{"ok": false, "error": "usage: -socket and -case are required"})
		return 2
	}

	conn, err := net.DialTimeout("unix", *socket, 5*time.Second)
	if err != nil {
		emit(errResult(err))
		return 0
	}
	sniffer := &frameSniffer{Conn: conn}
	client := ttrpc.NewClient(sniffer)
	defer client.Close()

	var r result
	switch *caseName {
	case "echo":
		if *size < 0 {
			r = result{"ok": false, "error": "usage: -size must be >= 0"}
			break
		}
		ctx, cancel := bounded(callBound)
		r = echo(ctx, client, pattern(*size))
		cancel()
	case "metadata":
		r = caseMetadata(client)
	case "status":
		r = caseStatus(client)
	case "deadline":
		r = caseDeadline(client)
	case "timeout":
		r = caseTimeout(client)
	case "concurrent":
		r = caseConcurrent(client, *n)
	case "oversize":
		r = caseOversize(client, sniffer)
	case "raw-hello":
		ctx, cancel := bounded(5 * time.Second)
		r = echo(ctx, client, []byte("hello"))
		cancel()
	default:
		emit(result{"ok": false, "error": fmt.Sprintf("usage: unknown case %q", *caseName)})
		return 2
	}
	emit(r)
	return 0
}

func emit(r result) {
	out, err := json.Marshal(r)
	if err != nil {
		out = []byte(fmt.Sprintf(`{"ok":false,"error":%q}`, "json: "+err.Error()))
	}
	fmt.Fprintln(os.Stdout, string(out))
}

func caseMetadata(c *ttrpc.Client) result {
	ctx, cancel := bounded(callBound)
	defer cancel()
	ctx = ttrpc.WithMetadata(ctx, ttrpc.MD{"k1": {"a", "b"}, "k2": {"c"}})
	var resp types.StringValue
	if err := c.Call(ctx, serviceName, "Metadata", &types.Empty{}, &resp); err != nil {
		return errResult(err)
	}
	if !json.Valid([]byte(resp.Value)) {
		return result{"ok": false, "error": "Metadata returned invalid JSON", "raw": resp.Value}
	}
	return result{"ok": true, "metadata": json.RawMessage(resp.Value)}
}

func caseStatus(c *ttrpc.Client) result {
	results := make([]result, 0, 16)
	for code := 1; code <= 16; code++ {
		ctx, cancel := bounded(callBound)
		var resp types.StringValue
		req := &types.StringValue{Value: fmt.Sprintf("%d:msg-%d", code, code)}
		err := c.Call(ctx, serviceName, "Status", req, &resp)
		cancel()
		r := result{"code": 0, "message": ""}
		if err != nil {
			if st, ok := status.FromError(err); ok {
				r["code"] = int(st.Code())
				r["message"] = st.Message()
			} else {
				r = errResult(err)
			}
		}
		results = append(results, r)
	}
	return result{"ok": true, "results": results}
}

func caseDeadline(c *ttrpc.Client) result {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var resp types.Int64Value
	if err := c.Call(ctx, serviceName, "Deadline", &types.Empty{}, &resp); err != nil {
		return errResult(err)
	}
	return result{"ok": true, "remaining_ns": resp.Value}
}

func caseTimeout(c *ttrpc.Client) result {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	var resp types.Int64Value
	err := c.Call(ctx, serviceName, "Sleep", &types.Int64Value{Value: 500}, &resp)
	elapsed := time.Since(start).Milliseconds()
	if err != nil {
		r := errResult(err)
		r["elapsed_ms"] = elapsed
		return r
	}
	return result{"ok": true, "elapsed_ms": elapsed, "value": resp.Value}
}

func caseConcurrent(c *ttrpc.Client, n int) result {
	if n < 2 {
		return result{"ok": false, "error": "usage: -n must be >= 2 (one Block plus Echos)"}
	}
	blockDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var resp types.Empty
		blockDone <- c.Call(ctx, serviceName, "Block", &types.Empty{}, &resp)
	}()
	// Give Block a head start so the Echos really overlap it.
	time.Sleep(50 * time.Millisecond)

	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		echoOK     int
		echoErrors []string
		maxElapsed int64
	)
	data := pattern(16)
	for i := 0; i < n-1; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := bounded(callBound)
			defer cancel()
			start := time.Now()
			var resp types.BytesValue
			err := c.Call(ctx, serviceName, "Echo", &types.BytesValue{Value: data}, &resp)
			elapsed := time.Since(start).Milliseconds()
			mu.Lock()
			defer mu.Unlock()
			if elapsed > maxElapsed {
				maxElapsed = elapsed
			}
			switch {
			case err != nil:
				echoErrors = append(echoErrors, err.Error())
			case string(resp.Value) != string(data):
				echoErrors = append(echoErrors, "echo mismatch")
			default:
				echoOK++
			}
		}()
	}
	wg.Wait()

	// Release until Block returns: a Release that overtakes the Block
	// request on the server would otherwise leave it waiting for its
	// timeout.
	var (
		blockErr   error
		releaseErr error
		releases   int
	)
wait:
	for {
		ctx, cancel := bounded(callBound)
		var resp types.Empty
		releaseErr = c.Call(ctx, serviceName, "Release", &types.Empty{}, &resp)
		cancel()
		releases++
		select {
		case blockErr = <-blockDone:
			break wait
		case <-time.After(100 * time.Millisecond):
		}
		if releaseErr != nil {
			blockErr = <-blockDone
			break wait
		}
	}

	r := result{
		"ok":              true,
		"echo_ok":         echoOK,
		"echo_elapsed_ms": maxElapsed,
		"block_err":       nil,
		"releases":        releases,
	}
	if len(echoErrors) > 0 {
		r["echo_errors"] = echoErrors
	}
	if blockErr != nil {
		r["block_err"] = blockErr.Error()
	}
	if releaseErr != nil {
		r["release_err"] = releaseErr.Error()
	}
	return r
}

// oversizePayload returns the Echo payload whose Request frame data is
// exactly maxMessage+1 bytes (no deadline, no metadata).
func oversizePayload() ([]byte, error) {
	const target = maxMessage + 1
	for n := target - 64; n < target; n++ {
		data := pattern(n)
		payload, err := proto.Marshal(&types.BytesValue{Value: data})
		if err != nil {
			return nil, err
		}
		req := &ttrpc.Request{Service: serviceName, Method: "Echo", Payload: payload}
		if proto.Size(req) == target {
			return data, nil
		}
	}
	return nil, errors.New("no payload size gives the target frame length")
}

func caseOversize(c *ttrpc.Client, sniffer *frameSniffer) result {
	data, err := oversizePayload()
	if err != nil {
		return errResult(err)
	}
	ctx, cancel := bounded(callBound)
	first := echo(ctx, c, data)
	cancel()
	var frameLen interface{}
	if l := sniffer.lengths(); len(l) > 0 {
		frameLen = l[0]
	}
	first["payload_len"] = len(data)
	first["frame_len"] = frameLen

	ctx, cancel = bounded(5 * time.Second)
	second := echo(ctx, c, pattern(16))
	cancel()
	return result{"first": first, "second": second}
}
