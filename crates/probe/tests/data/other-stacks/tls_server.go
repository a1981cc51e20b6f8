// A minimal TLS server on Go's crypto/tls (standard library only), for bleedwatch's probe tests:
// tls_server ADDR CERT.pem KEY.pem. It accepts TLS 1.0 to 1.2 and answers each connection's
// first line with "ok"; crypto/tls has no heartbeat extension.
package main

import (
	"bufio"
	"crypto/tls"
	"log"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: tls_server ADDR CERT.pem KEY.pem")
	}
	cert, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
	if err != nil {
		log.Fatal(err)
	}
	config := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS10,
		MaxVersion:   tls.VersionTLS12,
	}
	listener, err := tls.Listen("tcp", os.Args[1], config)
	if err != nil {
		log.Fatal(err)
	}
	for {
		conn, err := listener.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(conn)
	}
}

func serve(conn net.Conn) {
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		log.Printf("%s: %v", conn.RemoteAddr(), err)
		return
	}
	conn.Write([]byte("ok " + line))
}
