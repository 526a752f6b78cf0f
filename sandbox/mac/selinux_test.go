package mac

import (
	"errors"
	"testing"
)

func TestLabels(t *testing.T) {
	for _, tc := range []struct {
		name, typ, level string
		process          bool
		want             string
		wantErr          error
	}{
		{"default domain", "", "s0:c12,c345", true, "system_u:system_r:svirt_t:s0:c12,c345", nil},
		{"custom domain", "govmm_t", "s0:c0,c1", true, "system_u:system_r:govmm_t:s0:c0,c1", nil},
		{"default image", "", "s0:c12,c345", false, "system_u:object_r:svirt_image_t:s0:c12,c345", nil},
		{"custom image", "govmm_image_t", "s0:c1,c2", false, "system_u:object_r:govmm_image_t:s0:c1,c2", nil},
		{"colon in domain", "svirt_t:s0-s0:c0.c1023", "s0:c1,c2", true, "", ErrInvalidName},
		{"space in type", "svirt image_t", "s0:c1,c2", false, "", ErrInvalidName},
		{"leading digit", "1svirt_t", "s0:c1,c2", true, "", ErrInvalidName},
		{"all categories", "", "s0-s0:c0.c1023", true, "", ErrInvalidLevel},
		{"empty level", "", "", false, "", ErrInvalidLevel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ImageLabel
			if tc.process {
				f = ProcessLabel
			}
			got, err := f(tc.typ, tc.level)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %q, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
