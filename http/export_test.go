package http

// OnShutdown runs f when Close has closed the listener and begun waiting for
// requests in flight, so a test can act at exactly that moment.
func (s *Server) OnShutdown(f func()) { s.srv.RegisterOnShutdown(f) }
