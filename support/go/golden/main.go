// Command golden records the exact bytes Go ttrpc 1.1.1 puts on the wire.
//
// Request frames are captured from a real ttrpc.Client talking over a
// net.Pipe; response frames are captured from a real ttrpc.Server serving on
// a unix socket, fed hand-made request frames over a raw connection. Every
// captured frame is written to DIR/frames/<name>.bin, and DIR/manifest.json
// describes each one with the values obtained by decoding the captured bytes
// with Go ttrpc's own types (so the manifest reflects Go's view of the
// frame).
//
// Build (no modules, no network):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o golden ./support/go/golden
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
	"github.com/gogo/protobuf/types"
	"github.com/golang/protobuf/ptypes/wrappers"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	headerLen       = 10
	typeRequest     = 0x1
	typeResponse    = 0x2
	messageLenMax   = 4 << 20
	ioTimeout       = 20 * time.Second
	testService     = "svc.Test"
	oversizedLength = messageLenMax + 1
)

// ---------------------------------------------------------------------------
// Manifest schema.

type manifestEntry struct {
	Name     string            `json:"name"`
	File     string            `json:"file"`
	Kind     string            `json:"kind"`
	StreamID uint32            `json:"stream_id"`
	Flags    uint8             `json:"flags"`
	Request  *manifestRequest  `json:"request,omitempty"`
	Response *manifestResponse `json:"response,omitempty"`
}

type manifestKV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type manifestRequest struct {
	Service     string       `json:"service"`
	Method      string       `json:"method"`
	PayloadHex  string       `json:"payload_hex"`
	TimeoutNano int64        `json:"timeout_nano"`
	Metadata    []manifestKV `json:"metadata"`
}

type manifestAny struct {
	TypeURL  string `json:"type_url"`
	ValueHex string `json:"value_hex"`
}

type manifestStatus struct {
	Code    int32         `json:"code"`
	Message string        `json:"message"`
	Details []manifestAny `json:"details"`
}

type manifestResponse struct {
	Status     *manifestStatus `json:"status"`
	PayloadHex string          `json:"payload_hex"`
}

// ---------------------------------------------------------------------------
// Raw frame helpers.

// frame is one complete ttrpc frame as seen on the wire.
type frame struct {
	raw      []byte // header + data, exactly as read
	length   uint32
	streamID uint32
	typ      uint8
	flags    uint8
}

func (f frame) data() []byte { return f.raw[headerLen:] }

func encodeHeader(length, streamID uint32, typ, flags uint8) []byte {
	h := make([]byte, headerLen)
	binary.BigEndian.PutUint32(h[0:4], length)
	binary.BigEndian.PutUint32(h[4:8], streamID)
	h[8] = typ
	h[9] = flags
	return h
}

func encodeFrame(streamID uint32, typ uint8, data []byte) []byte {
	return append(encodeHeader(uint32(len(data)), streamID, typ, 0), data...)
}

// readFrame reads exactly one frame (header + data) from r.
func readFrame(r io.Reader) (frame, error) {
	h := make([]byte, headerLen)
	if _, err := io.ReadFull(r, h); err != nil {
		return frame{}, fmt.Errorf("reading header: %w", err)
	}
	f := frame{
		length:   binary.BigEndian.Uint32(h[0:4]),
		streamID: binary.BigEndian.Uint32(h[4:8]),
		typ:      h[8],
		flags:    h[9],
	}
	if f.length > messageLenMax {
		return frame{}, fmt.Errorf("captured frame claims %d bytes, refusing", f.length)
	}
	data := make([]byte, f.length)
	if _, err := io.ReadFull(r, data); err != nil {
		return frame{}, fmt.Errorf("reading %d data bytes: %w", f.length, err)
	}
	f.raw = append(h, data...)
	return f, nil
}

// marshalRequest encodes a ttrpc.Request the same way Go ttrpc's codec does
// (gogo proto.Marshal).
func marshalRequest(req *ttrpc.Request) []byte {
	p, err := proto.Marshal(req)
	if err != nil {
		log.Fatalf("marshal request: %v", err)
	}
	return p
}

// ---------------------------------------------------------------------------
// Decoding captured frames into manifest entries (Go's view).

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func requestEntry(name string, f frame) manifestEntry {
	if f.typ != typeRequest {
		log.Fatalf("%s: captured frame has type %d, want request", name, f.typ)
	}
	var req ttrpc.Request
	if err := proto.Unmarshal(f.data(), &req); err != nil {
		log.Fatalf("%s: unmarshal captured request: %v", name, err)
	}
	md := []manifestKV{}
	for _, kv := range req.Metadata {
		md = append(md, manifestKV{Key: kv.Key, Value: kv.Value})
	}
	return manifestEntry{
		Name:     name,
		File:     "frames/" + name + ".bin",
		Kind:     "request",
		StreamID: f.streamID,
		Flags:    f.flags,
		Request: &manifestRequest{
			Service:     req.Service,
			Method:      req.Method,
			PayloadHex:  hexOf(req.Payload),
			TimeoutNano: req.TimeoutNano,
			Metadata:    md,
		},
	}
}

func responseEntry(name string, f frame) manifestEntry {
	if f.typ != typeResponse {
		log.Fatalf("%s: captured frame has type %d, want response", name, f.typ)
	}
	var resp ttrpc.Response
	if err := proto.Unmarshal(f.data(), &resp); err != nil {
		log.Fatalf("%s: unmarshal captured response: %v", name, err)
	}
	var st *manifestStatus
	if resp.Status != nil {
		st = &manifestStatus{
			Code:    resp.Status.Code,
			Message: resp.Status.Message,
			Details: []manifestAny{},
		}
		for _, d := range resp.Status.Details {
			st.Details = append(st.Details, manifestAny{TypeURL: d.TypeUrl, ValueHex: hexOf(d.Value)})
		}
	}
	return manifestEntry{
		Name:     name,
		File:     "frames/" + name + ".bin",
		Kind:     "response",
		StreamID: f.streamID,
		Flags:    f.flags,
		Response: &manifestResponse{
			Status:     st,
			PayloadHex: hexOf(resp.Payload),
		},
	}
}

// ---------------------------------------------------------------------------
// Client-side capture: a real ttrpc.Client writes into one end of a
// net.Pipe; we read the raw frames from the other end and answer each with
// an empty (success) Response so that Call returns.

func captureClientRequests(name string, calls func(c *ttrpc.Client) error) []frame {
	clientEnd, peerEnd := net.Pipe()
	client := ttrpc.NewClient(clientEnd)
	defer client.Close()
	defer peerEnd.Close()

	var (
		frames []frame
		done   = make(chan error, 1)
		stop   = make(chan struct{})
	)
	okResp, err := proto.Marshal(&ttrpc.Response{})
	if err != nil {
		log.Fatalf("marshal response: %v", err)
	}
	go func() {
		for {
			f, err := readFrame(peerEnd)
			if err != nil {
				select {
				case <-stop:
					done <- nil
				default:
					done <- err
				}
				return
			}
			frames = append(frames, f)
			if _, err := peerEnd.Write(encodeFrame(f.streamID, typeResponse, okResp)); err != nil {
				done <- err
				return
			}
		}
	}()

	if err := calls(client); err != nil {
		log.Fatalf("%s: client call failed: %v", name, err)
	}
	close(stop)
	peerEnd.Close()
	if err := <-done; err != nil {
		log.Fatalf("%s: peer: %v", name, err)
	}
	return frames
}

func callEmpty(ctx context.Context, c *ttrpc.Client, method string) error {
	return c.Call(ctx, testService, method, &types.Empty{}, &types.Empty{})
}

type requestCase struct {
	name  string
	calls func(c *ttrpc.Client) error
}

func requestCases() []requestCase {
	bg := context.Background()
	return []requestCase{
		{"request_empty", func(c *ttrpc.Client) error {
			return callEmpty(bg, c, "Empty")
		}},
		{"request_payload", func(c *ttrpc.Client) error {
			v := make([]byte, 16)
			for i := range v {
				v[i] = byte(i)
			}
			return c.Call(bg, testService, "Payload", &types.BytesValue{Value: v}, &types.Empty{})
		}},
		{"request_metadata", func(c *ttrpc.Client) error {
			// Exactly one key: Go iterates the MD map in random order,
			// so more keys would make the frame non-deterministic.
			md := ttrpc.MD{}
			md.Set("x-key", "a", "b")
			return callEmpty(ttrpc.WithMetadata(bg, md), c, "Metadata")
		}},
		{"request_timeout", func(c *ttrpc.Client) error {
			ctx, cancel := context.WithTimeout(bg, 5*time.Second)
			defer cancel()
			return callEmpty(ctx, c, "Timeout")
		}},
		{"request_second_call", func(c *ttrpc.Client) error {
			if err := callEmpty(bg, c, "Empty"); err != nil {
				return err
			}
			return callEmpty(bg, c, "Empty")
		}},
	}
}

// ---------------------------------------------------------------------------
// Server-side capture: a real ttrpc.Server on a unix socket; we write raw
// request frames over a plain net.Conn and read back one response frame.

func startServer(dir string) (string, func()) {
	srv, err := ttrpc.NewServer()
	if err != nil {
		log.Fatalf("new server: %v", err)
	}
	srv.Register(testService, map[string]ttrpc.Method{
		"Empty": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.Empty
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &types.Empty{}, nil
		},
		"Payload": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.Empty
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &types.BytesValue{Value: []byte("hello")}, nil
		},
		"Error": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			return nil, status.Errorf(codes.NotFound, "thing not found")
		},
		"Details": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			// grpc 1.33's WithDetails goes through golang/protobuf 1.3
			// (ptypes.MarshalAny), which only knows the type name of
			// messages registered with that package, so the detail must
			// be its wrappers.StringValue (an APIv2 wrapperspb value
			// would yield the type URL "type.googleapis.com/").
			st, err := status.New(codes.FailedPrecondition, "with details").
				WithDetails(&wrappers.StringValue{Value: "detail"})
			if err != nil {
				return nil, fmt.Errorf("building status details: %w", err)
			}
			for _, d := range st.Proto().Details {
				if d.TypeUrl != "type.googleapis.com/google.protobuf.StringValue" {
					log.Fatalf("unexpected detail type URL %q", d.TypeUrl)
				}
			}
			return nil, st.Err()
		},
		"Deadline": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})

	sock := filepath.Join(dir, "ttrpc.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(context.Background(), l); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
			log.Printf("serve: %v", err)
		}
	}()
	return sock, func() {
		srv.Close()
		<-served
	}
}

// captureServerResponse dials the server, lets send write the raw request
// bytes (concurrently with reading, so large writes cannot deadlock), and
// returns the first response frame.
func captureServerResponse(name, sock string, send func(w io.Writer) error) frame {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		log.Fatalf("%s: dial: %v", name, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		log.Fatalf("%s: set deadline: %v", name, err)
	}
	sent := make(chan error, 1)
	go func() { sent <- send(conn) }()
	f, err := readFrame(conn)
	if err != nil {
		log.Fatalf("%s: reading response: %v", name, err)
	}
	if err := <-sent; err != nil {
		log.Fatalf("%s: writing request: %v", name, err)
	}
	return f
}

func sendBytes(b []byte) func(w io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

func requestFrame(streamID uint32, req *ttrpc.Request) []byte {
	return encodeFrame(streamID, typeRequest, marshalRequest(req))
}

type responseCase struct {
	name string
	send func(w io.Writer) error
}

func responseCases() []responseCase {
	simple := func(method string) func(w io.Writer) error {
		return sendBytes(requestFrame(1, &ttrpc.Request{Service: testService, Method: method}))
	}
	return []responseCase{
		{"response_empty_success", simple("Empty")},
		{"response_payload", simple("Payload")},
		{"response_error_status", simple("Error")},
		{"response_status_details", simple("Details")},
		{"response_unknown_service", sendBytes(requestFrame(1, &ttrpc.Request{Service: "nope.Svc", Method: "Empty"}))},
		{"response_unknown_method", simple("Nope")},
		{"response_even_stream_id", sendBytes(requestFrame(2, &ttrpc.Request{Service: testService, Method: "Empty"}))},
		{"response_undecodable_request", sendBytes(encodeFrame(1, typeRequest, []byte{0xff, 0xff, 0xff}))},
		{"response_oversized_request", func(w io.Writer) error {
			if _, err := w.Write(encodeHeader(oversizedLength, 1, typeRequest, 0)); err != nil {
				return err
			}
			_, err := w.Write(make([]byte, oversizedLength))
			return err
		}},
		{"response_handler_deadline", sendBytes(requestFrame(1, &ttrpc.Request{
			Service: testService, Method: "Deadline", TimeoutNano: 1,
		}))},
	}
}

// ---------------------------------------------------------------------------

func writeFrameFile(outDir, name string, f frame) {
	if len(f.raw) != headerLen+int(f.length) {
		log.Fatalf("%s: frame length mismatch", name)
	}
	if err := ioutil.WriteFile(filepath.Join(outDir, "frames", name+".bin"), f.raw, 0o644); err != nil {
		log.Fatalf("%s: write: %v", name, err)
	}
}

func main() {
	out := flag.String("out", "", "output directory (receives manifest.json and frames/)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: golden -out DIR")
		os.Exit(2)
	}
	log.SetFlags(0)
	log.SetPrefix("golden: ")

	framesDir := filepath.Join(*out, "frames")
	if err := os.RemoveAll(framesDir); err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(framesDir, 0o755); err != nil {
		log.Fatal(err)
	}

	var manifest []manifestEntry

	for _, rc := range requestCases() {
		frames := captureClientRequests(rc.name, rc.calls)
		if len(frames) == 0 {
			log.Fatalf("%s: no frame captured", rc.name)
		}
		f := frames[len(frames)-1] // request_second_call: the second one
		writeFrameFile(*out, rc.name, f)
		manifest = append(manifest, requestEntry(rc.name, f))
	}

	tmp, err := ioutil.TempDir("", "ttrpc-golden-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	sock, stop := startServer(tmp)
	for _, rc := range responseCases() {
		f := captureServerResponse(rc.name, sock, rc.send)
		writeFrameFile(*out, rc.name, f)
		manifest = append(manifest, responseEntry(rc.name, f))
	}
	stop()

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(manifest); err != nil {
		log.Fatal(err)
	}
	if err := ioutil.WriteFile(filepath.Join(*out, "manifest.json"), buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %d frames to %s\n", len(manifest), *out)
}
