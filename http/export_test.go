package http

// OnShutdown runs f when Close has closed the listener and begun waiting for
// requests in flight, so a test can act at exactly that moment.
func (s *Server) OnShutdown(f func()) { s.srv.RegisterOnShutdown(f) }

// Routes builds a server's route table afresh, so a test can ask which
// pattern serves a request without going through the middleware.
var Routes = (*Server).routes

// RouteClasses lists the patterns of the admission table.
func RouteClasses() []string {
	var out []string
	for p := range routeClasses {
		out = append(out, p)
	}
	return out
}

// IsProbe says whether the table lets pattern through unlimited.
func IsProbe(pattern string) bool { return routeClasses[pattern].probe }
