// Command cutproxy is a TCP proxy for bench/run.sh's "cut" scenario: it
// forwards connections to an upstream server and cuts each one after it
// has passed -cut bytes from the upstream, as a flaky link, a proxy or a
// CDN that drops long transfers does. Every cut or closed connection adds
// one line to -log: the bytes it sent to the client, which the bench adds
// up (bytes sent per byte kept, issue 22).
//
//	go run ./bench/cutproxy -listen 127.0.0.1:18488 -upstream 127.0.0.1:18481 -cut 2097152 -log sent.log
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18488", "`address` to listen on")
	upstream := flag.String("upstream", "127.0.0.1:18481", "`address` to forward to")
	cut := flag.Int64("cut", 2<<20, "cut a connection after this many `bytes` from the upstream (0 = never)")
	logPath := flag.String("log", "cutproxy.log", "`file` that gets one line per connection: the bytes sent to the client")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex // one line at a time; the file is opened per line so the bench may truncate it
	record := func(n int64) {
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			log.Print(err)
			return
		}
		fmt.Fprintln(f, n)
		f.Close()
	}
	for {
		client, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(client, *upstream, *cut, record)
	}
}

// serve forwards one connection until either side closes or the cut.
func serve(client net.Conn, upstream string, cut int64, record func(int64)) {
	defer client.Close()
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		io.Copy(server, client) // requests; ends when the client closes
		server.Close()
	}()
	var src io.Reader = server
	if cut > 0 {
		src = io.LimitReader(server, cut)
	}
	n, _ := io.Copy(client, src)
	record(n)
}
