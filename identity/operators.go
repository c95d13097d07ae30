package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"zhifu"
	"zhifu/ledger"
)

// Operators are the people who run the platform. Each has a login of their
// own, so every admin action names who took it (the audit log) and an
// action that needs a second person (an approval) can tell two people apart.
// The operator token from configuration is the bootstrap operator, Root: it
// creates the first operators, and like any operator it cannot approve what
// it proposed itself.

// RootOperatorID is the identity of the configured operator token.
const RootOperatorID = "OP00000000"

// OperatorSessionTTL is how long an operator's login token stays valid: a
// working day, shorter than a user's.
const OperatorSessionTTL = 12 * time.Hour

// operatorsListMax bounds one listing of operators.
const operatorsListMax = 1000

// Operator is a person with admin rights.
type Operator struct {
	OperatorID string
	Login      string
	Name       string
	CreatedBy  string // the operator who created this one
	CreatedAt  time.Time
}

// Root is the operator of the configured token.
var Root = Operator{OperatorID: RootOperatorID, Login: "root", Name: "operator token"}

// OperatorIDOf returns the public id of operator number num.
func OperatorIDOf(num int64) string { return fmt.Sprintf("OP%08d", num) }

// CreateOperator registers an operator, created by operator by.
func (s *Service) CreateOperator(ctx context.Context, by *Operator, login, password, name string) (*Operator, error) {
	if err := checkLogin(login); err != nil {
		return nil, err
	}
	if err := checkPasswordRules(password); err != nil {
		return nil, err
	}
	if err := checkName(name, "name"); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("create operator: %w", err)
	}
	op := &createOperatorOp{o: Operator{Login: login, Name: name, CreatedBy: by.OperatorID, CreatedAt: s.now().UTC()},
		hash: hash}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, fmt.Errorf("create operator: %w", err)
	}
	if op.taken {
		return nil, invalid("login", "login already taken")
	}
	return &op.o, nil
}

// OperatorLogin checks an operator's login and password and opens a
// session, as Login does for users.
func (s *Service) OperatorLogin(ctx context.Context, login, password string) (string, *Operator, error) {
	refused := zhifu.Errorf(zhifu.Unauthorized, "invalid login or password")
	if checkLogin(login) != nil || len(password) > passwordLenMax*utf8.UTFMax {
		return "", nil, refused
	}
	var o Operator
	var stored string
	var created int64
	err := s.cfg.Store.Reader().QueryRow(ctx, `SELECT operator_id, login, name, created_by, password_hash, created_at
		FROM operators WHERE login = ?`, login).Scan(&o.OperatorID, &o.Login, &o.Name, &o.CreatedBy, &stored, &created)
	found := err == nil
	switch {
	case errors.Is(err, ledger.ErrNoRows):
		stored = dummyHash
	case err != nil:
		return "", nil, fmt.Errorf("operator login: %w", err)
	}
	ok, err := s.checkPassword(ctx, stored, password)
	if err != nil {
		return "", nil, fmt.Errorf("operator login: %w", err)
	}
	if !ok || !found {
		return "", nil, refused
	}
	o.CreatedAt = time.Unix(0, created).UTC()
	raw := make([]byte, tokenBytes)
	rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	sess := &sessionOp{hash: tokenHash(token), userID: o.OperatorID, expires: s.now().Add(OperatorSessionTTL)}
	if err := s.cfg.Batcher.Do(ctx, sess); err != nil {
		return "", nil, fmt.Errorf("operator login: %w", err)
	}
	return token, &o, nil
}

// OperatorByToken returns the operator an operator session token belongs
// to; a user's token, an unknown or expired one is 401 UNAUTHORIZED.
func (s *Service) OperatorByToken(ctx context.Context, token string) (*Operator, error) {
	refused := zhifu.Errorf(zhifu.Unauthorized, "a valid operator bearer token is required")
	if !wellFormedToken(token) {
		return nil, refused
	}
	var o Operator
	var created, expires int64
	err := s.cfg.Store.Reader().QueryRow(ctx, `SELECT o.operator_id, o.login, o.name, o.created_by, o.created_at,
		s.expires_at FROM sessions s JOIN operators o ON o.operator_id = s.user_id WHERE s.token_hash = ?`,
		tokenHash(token)).Scan(&o.OperatorID, &o.Login, &o.Name, &o.CreatedBy, &created, &expires)
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, refused
	}
	if err != nil {
		return nil, fmt.Errorf("operator by token: %w", err)
	}
	if !s.now().Before(time.Unix(0, expires)) {
		return nil, refused
	}
	o.CreatedAt = time.Unix(0, created).UTC()
	return &o, nil
}

// Operators lists the operators, oldest first.
func (s *Service) Operators(ctx context.Context) ([]Operator, error) {
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT operator_id, login, name, created_by, created_at
		FROM operators ORDER BY num LIMIT ?`, operatorsListMax)
	if err != nil {
		return nil, fmt.Errorf("list operators: %w", err)
	}
	defer rows.Close()
	var out []Operator
	for rows.Next() {
		var o Operator
		var created int64
		if err := rows.Scan(&o.OperatorID, &o.Login, &o.Name, &o.CreatedBy, &created); err != nil {
			return nil, fmt.Errorf("list operators: %w", err)
		}
		o.CreatedAt = time.Unix(0, created).UTC()
		out = append(out, o)
	}
	return out, rows.Err()
}

// createOperatorOp inserts an operator; its id derives from the database's
// number, as a user's does.
type createOperatorOp struct {
	o     Operator
	hash  string
	taken bool
}

func (o *createOperatorOp) Keys() []string { return []string{"operator-login:" + o.o.Login} }

// Applied says whether the operator was created (ledger.Applier).
func (o *createOperatorOp) Applied() bool { return !o.taken }

func (o *createOperatorOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.taken, o.o.OperatorID = false, ""
	return nil, nil
}

func (o *createOperatorOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	var num int64
	err := tx.QueryRow(ctx, `INSERT INTO operators (operator_id, login, name, password_hash, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING num`,
		"new:"+o.o.Login, o.o.Login, o.o.Name, o.hash, o.o.CreatedBy, o.o.CreatedAt.UnixNano()).Scan(&num)
	if errors.Is(err, ledger.ErrNoRows) {
		o.taken = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("insert operator: %w", err)
	}
	o.o.OperatorID = OperatorIDOf(num)
	if _, err := tx.Exec(ctx, `UPDATE operators SET operator_id = ? WHERE num = ?`, o.o.OperatorID, num); err != nil {
		return fmt.Errorf("set operator id: %w", err)
	}
	return nil
}

type operatorKey struct{}

// WithOperator returns ctx carrying the operator making the request.
func WithOperator(ctx context.Context, o *Operator) context.Context {
	return context.WithValue(ctx, operatorKey{}, o)
}

// OperatorFrom returns the operator making the request, or nil outside an
// operator's request.
func OperatorFrom(ctx context.Context) *Operator {
	o, _ := ctx.Value(operatorKey{}).(*Operator)
	return o
}
