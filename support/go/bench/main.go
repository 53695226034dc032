// Command bench is the Go ttrpc (v1.1.1, Debian) benchmark peer driven by
// support/bench/run.sh.
//
//	bench server SOCKET
//	bench client SOCKET CASE SECONDS
//
// The service is "ttrpc.bench.Bench", method "Echo": the server decodes the
// google.protobuf.BytesValue request and returns it. The client prints
// "calls elapsed_ns" for CASE rtt16, inflight16 or mib. Build with:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o bench .
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/types"
)

const (
	serviceName = "ttrpc.bench.Bench"
	methodName  = "Echo"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bench server SOCKET | bench client SOCKET CASE SECONDS")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	switch os.Args[1] {
	case "server":
		server(os.Args[2])
	case "client":
		if len(os.Args) != 5 {
			usage()
		}
		secs, err := strconv.ParseFloat(os.Args[4], 64)
		if err != nil {
			usage()
		}
		client(os.Args[2], os.Args[3], secs)
	default:
		usage()
	}
}

func server(socket string) {
	os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s.Register(serviceName, map[string]ttrpc.Method{
		methodName: func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req types.BytesValue
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &req, nil
		},
	})
	if err := s.Serve(context.Background(), l); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func client(socket, name string, secs float64) {
	size, inflight := 16, 1
	switch name {
	case "rtt16":
	case "inflight16":
		inflight = 16
	case "mib":
		size = 1 << 20
	default:
		usage()
	}
	conn, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c := ttrpc.NewClient(conn)
	defer c.Close()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	call := func() {
		req := types.BytesValue{Value: payload}
		var resp types.BytesValue
		if err := c.Call(context.Background(), serviceName, methodName, &req, &resp); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if len(resp.Value) != size {
			fmt.Fprintln(os.Stderr, "short answer")
			os.Exit(1)
		}
	}
	for i := 0; i < 10; i++ {
		call()
	}
	var calls uint64
	var stop int32
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < inflight; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.LoadInt32(&stop) == 0 {
				call()
				atomic.AddUint64(&calls, 1)
			}
		}()
	}
	time.Sleep(time.Duration(secs * float64(time.Second)))
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	fmt.Printf("%d %d\n", calls, time.Since(start).Nanoseconds())
}
