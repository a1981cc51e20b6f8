%% A minimal TLS server on Erlang/OTP's ssl application, for bleedwatch's probe tests:
%% erl -noshell -pa DIR -s tls_server main PORT CERT.pem KEY.pem (after erlc tls_server.erl), or as
%% an escript. Listens on 127.0.0.1:PORT, TLS 1.0 to 1.2 (OTP's ssl has no heartbeat extension),
%% accepts in a loop and handshakes each connection in its own process, which keeps the socket
%% until the client closes it or 15 s pass.
-module(tls_server).
-export([main/1]).

main([Port, Cert, Key]) ->
    {ok, _} = application:ensure_all_started(ssl),
    {ok, Listen} = ssl:listen(list_to_integer(atom_to_list(Port)),
                              [{ip, {127, 0, 0, 1}}, {reuseaddr, true}, {active, false},
                               {certfile, atom_to_list(Cert)}, {keyfile, atom_to_list(Key)},
                               {versions, ['tlsv1', 'tlsv1.1', 'tlsv1.2']},
                               {log_level, error}]),
    spawn(fun() -> accept(Listen) end),
    %% This process owns the listening socket: it stays.
    receive stop -> ok end.

%% Each acceptor hands the listening socket on to a new one and serves its own connection.
accept(Listen) ->
    {ok, Transport} = ssl:transport_accept(Listen),
    spawn(fun() -> accept(Listen) end),
    serve(Transport).

serve(Transport) ->
    case ssl:handshake(Transport, 15000) of
        {ok, Socket} ->
            _ = ssl:recv(Socket, 0, 15000),
            ssl:close(Socket);
        {error, Reason} ->
            io:format(standard_error, "handshake: ~p~n", [Reason])
    end.
